import pytest

from conftest import REPO_ROOT
from maskrcnn_pointrend.config import ConfigError, load_config


def test_default_config_holds_detectron2_pointrend_r50_fpn_1x():
    cfg = load_config([])
    assert cfg.input.format == "BGR"
    assert cfg.input.pixel_mean == [103.530, 116.280, 123.675]
    assert cfg.input.min_size_train == [640, 672, 704, 736, 768, 800]
    assert (cfg.input.max_size_train, cfg.input.min_size_test, cfg.input.max_size_test) == (1333, 800, 1333)
    assert (cfg.solver.steps, cfg.solver.max_iter) == ([60000, 80000], 90000)
    assert (cfg.solver.base_lr, cfg.solver.ims_per_batch, cfg.solver.warmup_iters) == (0.02, 16, 1000)
    assert cfg.model.point_head.subdivision_num_points == 28 * 28


def test_overrides_nested_keys_and_flags():
    cfg = load_config(["--solver.base_lr=0.01", "--model.rpn.nms_thresh", "0.6", "--resume",
                       "--input.min_size_train=[512, 600]", "--coco_root=/data/coco"])
    assert cfg.solver.base_lr == 0.01
    assert cfg.model.rpn.nms_thresh == 0.6
    assert cfg.resume is True
    assert cfg.input.min_size_train == [512, 600]
    assert cfg.coco_root == "/data/coco"


def test_int_given_for_float_setting_becomes_float():
    assert load_config(["--solver.base_lr=1"]).solver.base_lr == 1.0


@pytest.mark.parametrize("arg, message", [
    ("--solver.base_rl=0.1", "did you mean solver.base_lr"),
    ("--nonexistent=1", "unknown setting 'nonexistent'"),
    ("--solver=1", "group of settings"),
    ("--solver.max_iter_x=3", "unknown setting"),
    ("--resume=yes-please", "takes bool"),
    ("--solver.warmup_iters=0.5", "takes int"),
    ("--model.anchor.offset=[1]", "takes float"),
])
def test_bad_overrides_are_errors(arg, message):
    with pytest.raises(ConfigError, match=message):
        load_config([arg])


def test_config_is_read_only():
    cfg = load_config([])
    with pytest.raises(AttributeError):
        cfg.solver.base_lr = 1.0


def test_missing_or_malformed_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(["--config_path", str(tmp_path / "nope.yaml")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(["--config_path", str(bad)])


def test_config_file_with_a_base_holds_only_its_changes(tmp_path):
    (tmp_path / "small.yaml").write_text("_base_: ../default_config.yaml\nmodel:\n  backbone:\n    depth: 18\n"
                                          "solver:\n  base_lr: 0.1\n")
    (tmp_path / "default_config.yaml").write_text((REPO_ROOT / "default_config.yaml").read_text())
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "small.yaml").write_text((tmp_path / "small.yaml").read_text())
    cfg = load_config(["--config_path", str(tmp_path / "sub" / "small.yaml"), "--solver.momentum=0.8"])
    assert (cfg.model.backbone.depth, cfg.solver.base_lr, cfg.solver.momentum) == (18, 0.1, 0.8)
    assert cfg.input.max_size_test == 1333
    (tmp_path / "sub" / "bad.yaml").write_text("_base_: ../default_config.yaml\nmodel:\n  backbone:\n    deep: 18\n")
    with pytest.raises(ConfigError, match="bad.yaml: unknown setting 'model.backbone.deep'"):
        load_config(["--config_path", str(tmp_path / "sub" / "bad.yaml")])


def test_float_settings_accept_exponent_notation():
    assert load_config(["--solver.base_lr=1e-3"]).solver.base_lr == 0.001
    assert load_config(["--solver.base_lr=1e6"]).solver.base_lr == 1e6
