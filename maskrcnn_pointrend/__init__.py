"""PointRend on the maskrcnn base detector.

MindSpore reads its log level (GLOG_v) once, when it is first imported: importing this package first sets it
to errors only (3) unless the user set it, so that MindSpore's warnings do not bury this project's messages.
Entry scripts import this package before MindSpore; `GLOG_v=2 python train.py ...` shows the warnings again.
"""
import os

os.environ.setdefault("GLOG_v", "3")
