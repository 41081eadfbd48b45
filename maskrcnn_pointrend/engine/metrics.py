"""What a training job reports per iteration: every loss, their total, the LR, iteration and data time, the
ETA and whether the RPN's proposal NMS converged -- one JSON line per iteration, a progress line in the log
every `period` iterations, and a warning for each iteration whose NMS did not converge."""
import datetime
import json
import logging
import os
from collections import deque

import numpy as np

logger = logging.getLogger(__name__)

# Iteration times the ETA is the median of (the median ignores the iterations that compile a graph).
ETA_WINDOW = 20


class TrainingMetrics:
    """Records the iterations start_iter .. max_iter - 1 of a job: JSON lines in `path` (None: none are
    written, e.g. on ranks other than 0), whose lines from start_iter on (left by a job that stopped after
    its last checkpoint) are replaced; progress logged on the first iteration, every `period` iterations
    and on the last ("iter n" counts completed iterations, the JSON "iteration" is 0-based)."""

    def __init__(self, path, loss_names, start_iter, max_iter, period, log=logger):
        if period < 1:
            raise ValueError(f"solver.log_period must be at least 1, got {period}")
        self.loss_names = tuple(loss_names)
        self.max_iter = max_iter
        self.period = period
        self.log = log
        self.times = deque(maxlen=ETA_WINDOW)
        self.logged_any = False
        self.file = None
        if path:
            kept = []
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as f:
                    kept = [line for line in f if json.loads(line)["iteration"] < start_iter]
            self.file = open(path, "w", encoding="utf-8")
            self.file.writelines(kept)

    def eta_seconds(self, iteration):
        """Seconds left after `iteration` at the median pace of recent iterations."""
        return float(np.median(self.times)) * (self.max_iter - iteration - 1)

    def record(self, iteration, losses, lr, iteration_time, data_time, nms_converged):
        """Record iteration `iteration` (0-based): (num_losses,) losses, its LR, timings in seconds, and whether
        the proposal NMS of its images converged (box_ops.nms)."""
        self.times.append(iteration_time)
        entry = {"iteration": iteration, **{name: float(v) for name, v in zip(self.loss_names, losses)},
                 "total_loss": float(np.sum(losses)), "lr": lr, "time": iteration_time, "data_time": data_time,
                 "eta_seconds": self.eta_seconds(iteration), "rpn_nms_converged": nms_converged}
        if not nms_converged:
            self.log.warning("iteration %d: the RPN's NMS did not reach its fixed point within model.rpn.nms_rounds "
                             "rounds; some proposals of this iteration may differ from greedy NMS", iteration)
        if self.file:
            self.file.write(json.dumps(entry) + "\n")
            self.file.flush()
        if not self.logged_any or (iteration + 1) % self.period == 0 or iteration + 1 == self.max_iter:
            self.logged_any = True
            self.log.info("iter %d/%d  total_loss %.4f  %s  lr %.6g  time %.3fs  data %.3fs  eta %s", iteration + 1,
                          self.max_iter, entry["total_loss"],
                          "  ".join(f"{name} {entry[name]:.4f}" for name in self.loss_names), lr, iteration_time,
                          data_time, datetime.timedelta(seconds=round(entry["eta_seconds"])))

    def close(self):
        if self.file:
            self.file.close()
