"""eval.py and postprogress.py end to end on coco_mini val images: files written, raw outputs giving the same
results and AP offline, the MindRecord pipeline giving the same results as image files; with a tiny model on
generated images: the categories of a model that names none, the umask's permissions, and bad input (images,
annotation files, raw files, output locations) named in one line before the work."""
import contextlib
import io
import json
import logging
import shutil
import stat
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pandas as pd
import pytest
from pycocotools.coco import COCO

from conftest import COCO_MINI, REPO_ROOT, TINY_MODEL, error_line, requires_shared, run_entry_point
from maskrcnn_pointrend.categories import CategoryError, GivenCategories, model_categories
from maskrcnn_pointrend.data.coco_categories import COCO_CATEGORIES
from maskrcnn_pointrend.evaluation.ground_truth import load_ground_truth
from maskrcnn_pointrend.raw_detections import RawDetections, RawFileError, load_raw, save_raw

VAL_JSON = COCO_MINI / "annotations" / "instances_val2017.json"
# two near-square images (800x800 and 800x1000 at test size) keep the CPU time low
EVAL_IMAGE_IDS = (165518, 153797)
OTHER_IMAGE_ID = 11813


def write_subset(path, image_ids, num_categories=None):
    """A copy of coco_mini val with only `image_ids` (and the first `num_categories` categories) -> path."""
    data = json.loads(VAL_JSON.read_text())
    data["images"] = [im for im in data["images"] if im["id"] in image_ids]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in image_ids]
    if num_categories is not None:
        data["categories"] = sorted(data["categories"], key=lambda c: c["id"])[:num_categories]
    path.write_text(json.dumps(data))
    return path


def run_script(script, *args):
    return subprocess.run([sys.executable, str(REPO_ROOT / script), *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True)


def run_ok(script, *args):
    proc = run_script(script, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def run_failing(script, *args):
    proc = run_script(script, *args)
    assert proc.returncode == 1, proc.stderr[-3000:]
    return proc.stderr


def stat_lines(output_dir):
    """eval.log without its timing lines: the header and 12 COCOeval summary lines per IoU type."""
    lines = (output_dir / "eval.log").read_text().splitlines()
    return [line for line in lines if not line.startswith("evaluate ")]


def read_results(output_dir):
    return json.loads((output_dir / "results_segm_bbox.json").read_text())


def by_image(results):
    """Results ordered by image id, each image's in their original (score) order."""
    return sorted(results, key=lambda r: r["image_id"])


@pytest.fixture(scope="module")
def eval_run(seed0_checkpoint, tmp_path_factory):
    """eval.py on the EVAL_IMAGE_IDS images with --visualize 1 and --save_raw."""
    folder = tmp_path_factory.mktemp("eval")
    ann_file = write_subset(folder / "subset.json", EVAL_IMAGE_IDS)
    output, raw = folder / "out", folder / "raw"
    proc = run_ok("eval.py", "--checkpoint_path", seed0_checkpoint, "--coco_root", COCO_MINI, "--ann_file", ann_file,
                  "--output_dir", output, "--visualize", 1, "--save_raw", raw)
    return SimpleNamespace(folder=folder, ann_file=ann_file, output=output, raw=raw, stderr=proc.stderr,
                           checkpoint=seed0_checkpoint)


@requires_shared
def test_eval_writes_results_logs_tables_timing_and_overlays(eval_run):
    results = read_results(eval_run.output)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(eval_run.ann_file))
        coco_dt = coco_gt.loadRes(results)
    assert results and set(coco_dt.getImgIds()) <= set(EVAL_IMAGE_IDS)
    assert {r["category_id"] for r in results} <= set(coco_gt.getCatIds())

    lines = stat_lines(eval_run.output)
    for iou_type in ("bbox", "segm", "boundary"):
        start = next(i for i, line in enumerate(lines) if line.startswith(f"Evaluate annotation type *{iou_type}*"))
        block = lines[start + 1:start + 13]
        assert len(block) == 12 and all(line.lstrip().startswith("Average") for line in block)

    table = pd.read_csv(eval_run.output / "per_category_ap.csv")
    assert len(table) == 80 and {"bbox_AP", "segm_AP", "boundary_AP"} <= set(table.columns)
    assert (eval_run.output / "per_category_ap.txt").is_file()

    metrics = json.loads((eval_run.output / "metrics.json").read_text())
    assert set(metrics) == {"bbox", "segm", "boundary"} and all(len(m) == 12 for m in metrics.values())

    timing = json.loads((eval_run.output / "timing.json").read_text())
    assert timing["images"] == 2 and timing["images_per_s"] > 0
    assert timing["stages_s"]["network"] > 0 and timing["stages_s"]["paste_encode"] > 0
    assert set(timing["cocoeval_s"]) == {"bbox", "segm", "boundary"}
    assert "images/s" in eval_run.stderr

    first = coco_gt.dataset["images"][0]["file_name"].replace(".jpg", ".png")
    assert [p.name for p in (eval_run.output / "visualize").iterdir()] == [first]
    assert sorted(p.name for p in eval_run.raw.iterdir()) == sorted(f"{i}.npz" for i in EVAL_IMAGE_IDS)


@requires_shared
def test_postprogress_runs_without_mindspore():
    """It never runs a network: a machine that only evaluates raw outputs from another runtime needs no MindSpore."""
    code = "import sys, postprogress; sys.exit('mindspore' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT).returncode == 0


def test_postprogress_gives_the_results_and_ap_of_eval(eval_run, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(eval_run.raw, raw)
    shutil.copy(raw / f"{EVAL_IMAGE_IDS[0]}.npz", raw / f"{OTHER_IMAGE_ID}.npz")  # not in the annotation file
    output = tmp_path / "out"
    proc = run_ok("postprogress.py", "--raw_dir", raw, "--ann_file", eval_run.ann_file, "--output_dir", output)
    assert "1 other raw files ignored" in proc.stderr
    assert read_results(output) == read_results(eval_run.output)
    assert stat_lines(output) == stat_lines(eval_run.output)
    assert (output / "per_category_ap.csv").read_text() == (eval_run.output / "per_category_ap.csv").read_text()


@pytest.fixture(scope="module")
def one_image_mindrecord(eval_run):
    """The first evaluated image alone, as an annotation file and its MindRecord conversion."""
    ann_file = write_subset(eval_run.folder / "one_image.json", EVAL_IMAGE_IDS[:1])
    mindrecord = eval_run.folder / "mindrecord"
    run_ok("convert_coco.py", "--coco_root", COCO_MINI, "--split", "val2017", "--ann_file", ann_file,
           "--output", mindrecord, "--workers", 1)
    return ann_file, mindrecord


@requires_shared
def test_mindrecord_pipeline_gives_the_results_of_image_files(eval_run, one_image_mindrecord, tmp_path):
    ann_file, mindrecord = one_image_mindrecord
    run_ok("eval.py", "--checkpoint_path", eval_run.checkpoint, "--ann_file", ann_file,
           "--mindrecord_dir", mindrecord, "--output_dir", tmp_path, "--visualize", 1)
    from_files = [r for r in read_results(eval_run.output) if r["image_id"] == EVAL_IMAGE_IDS[0]]
    assert read_results(tmp_path) == from_files
    name = next((eval_run.output / "visualize").iterdir()).name
    assert (tmp_path / "visualize" / name).read_bytes() == (eval_run.output / "visualize" / name).read_bytes()


@requires_shared
def test_recompiling_after_releasing_compiled_shapes_gives_the_same_results(eval_run, tmp_path):
    """Both images (two padded shapes) from a MindRecord with one compiled shape kept: the second shape releases
    the first one's graphs, and the results are still those of the image files."""
    mindrecord = tmp_path / "mindrecord"
    run_ok("convert_coco.py", "--coco_root", COCO_MINI, "--split", "val2017", "--ann_file", eval_run.ann_file,
           "--output", mindrecord, "--workers", 1)
    run_ok("eval.py", "--checkpoint_path", eval_run.checkpoint, "--ann_file", eval_run.ann_file,
           "--mindrecord_dir", mindrecord, "--output_dir", tmp_path / "out", "--test.max_compiled_shapes=1")
    assert by_image(read_results(tmp_path / "out")) == by_image(read_results(eval_run.output))


@requires_shared
def test_eval_rejects_a_mindrecord_without_the_annotation_files_images(eval_run, one_image_mindrecord, tmp_path):
    _, mindrecord = one_image_mindrecord
    stderr = run_failing("eval.py", "--checkpoint_path", eval_run.checkpoint, "--ann_file", eval_run.ann_file,
                         "--mindrecord_dir", mindrecord, "--output_dir", tmp_path)
    assert f"{mindrecord} lacks 1 of the 2 images of {eval_run.ann_file}" in stderr
    assert str(EVAL_IMAGE_IDS[1]) in stderr
    assert not (tmp_path / "results_segm_bbox.json").exists()


@requires_shared
@pytest.mark.parametrize("problem", ["missing", "not_json", "empty_image_dir"])
def test_eval_names_a_bad_annotation_file_or_image_directory(problem, eval_run, tmp_path):
    coco_root, ann_file = COCO_MINI, eval_run.ann_file
    if problem == "missing":
        ann_file = tmp_path / "absent.json"
        expected = f"cannot read annotation file {ann_file}"
    elif problem == "not_json":
        ann_file = tmp_path / "broken.json"
        ann_file.write_text('{"images": [')
        expected = f"{ann_file} is not valid JSON"
    else:
        coco_root = tmp_path / "coco"
        (coco_root / "val2017").mkdir(parents=True)
        expected = f"{coco_root / 'val2017'} lacks 2 of the 2 images of {ann_file}"
    stderr = run_failing("eval.py", "--checkpoint_path", eval_run.checkpoint, "--coco_root", coco_root,
                         "--ann_file", ann_file, "--output_dir", tmp_path / "out")
    assert expected in stderr
    assert not (tmp_path / "out" / "results_segm_bbox.json").exists()


@requires_shared
def test_eval_rejects_a_checkpoint_for_another_number_of_classes(eval_run, tmp_path):
    ann_file = write_subset(tmp_path / "three_categories.json", EVAL_IMAGE_IDS, num_categories=3)
    stderr = run_failing("eval.py", "--checkpoint_path", eval_run.checkpoint, "--coco_root", COCO_MINI,
                         "--ann_file", ann_file, "--output_dir", tmp_path / "out")
    assert f"checkpoint {eval_run.checkpoint} predicts 80 classes, {ann_file} has 3 categories" in stderr


@requires_shared
def test_postprogress_names_missing_and_corrupt_raw_files(eval_run, tmp_path):
    ann_file = write_subset(tmp_path / "three_images.json", EVAL_IMAGE_IDS + (OTHER_IMAGE_ID,))
    stderr = run_failing("postprogress.py", "--raw_dir", eval_run.raw, "--ann_file", ann_file,
                         "--output_dir", tmp_path / "out")
    assert f"{eval_run.raw} lacks the raw outputs of 1 of the 3 images of {ann_file}, e.g. image ids " \
           f"{OTHER_IMAGE_ID}" in stderr

    raw = tmp_path / "raw"
    shutil.copytree(eval_run.raw, raw)
    damaged = raw / f"{EVAL_IMAGE_IDS[1]}.npz"
    damaged.write_bytes(damaged.read_bytes()[:4096])
    stderr = run_failing("postprogress.py", "--raw_dir", raw, "--ann_file", eval_run.ann_file,
                         "--output_dir", tmp_path / "out")
    assert f"cannot read raw detections {damaged}" in stderr
    assert not (tmp_path / "out" / "results_segm_bbox.json").exists()


def test_model_categories_come_from_the_checkpoint_the_user_or_coco():
    given = GivenCategories("f.json", [(1, "cat"), (5, "dog")])
    assert model_categories({"categories": [[1, "cat"], [5, "hund"]]}, 2, "named.ckpt", given) == given.categories
    with pytest.raises(CategoryError, match=r"checkpoint named.ckpt and f.json disagree on 1 category ids: class 1 "
                                            r"is \(7, 'dog'\) in the checkpoint, \(5, 'dog'\) in f.json"):
        model_categories({"categories": [[1, "cat"], [7, "dog"]]}, 2, "named.ckpt", given)
    assert model_categories({"num_classes": 2}, 2, "unnamed.ckpt", given) == given.categories
    with pytest.raises(CategoryError, match="checkpoint unnamed.ckpt predicts 3 classes, f.json has 2 categories"):
        model_categories({"num_classes": 3}, 3, "unnamed.ckpt", given)
    assert model_categories({"categories": [[7, "dog"]]}, 1, "named.ckpt") == [(7, "dog")]
    assert model_categories({}, 80, "coco.ckpt") == list(COCO_CATEGORIES)
    with pytest.raises(CategoryError, match="predicts 4 classes and names no categories: give its 4 categories"):
        model_categories({}, 4, "custom.ckpt")


@pytest.fixture(scope="module")
def tiny_eval(tiny_checkpoint, shapes_dataset, tmp_path_factory):
    """eval.py of the 4-class model that names no categories on the generated val images, under umask 027."""
    output = tmp_path_factory.mktemp("tiny_eval") / "out"
    proc = run_entry_point("eval.py", *TINY_MODEL, "--checkpoint_path", tiny_checkpoint, "--coco_root",
                           shapes_dataset, "--val_split", "val", "--output_dir", output, "--save_raw", output / "raw",
                           umask=0o027)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return SimpleNamespace(output=output, stderr=proc.stderr)


def test_a_model_that_names_no_categories_takes_the_annotation_files(tiny_eval, tiny_checkpoint, shapes_dataset):
    ann_file = shapes_dataset / "annotations" / "instances_val.json"
    assert f"{tiny_checkpoint} names no categories: class i is {ann_file}'s i-th category by id" in tiny_eval.stderr
    categories = {c["id"] for c in json.loads(ann_file.read_text())["categories"]}
    assert read_results(tiny_eval.output) and {r["category_id"] for r in read_results(tiny_eval.output)} <= categories
    assert set(json.loads((tiny_eval.output / "metrics.json").read_text())) == {"bbox", "segm", "boundary"}


def test_eval_output_files_have_the_permissions_of_the_umask_without_warnings(tiny_eval):
    files = [p for p in tiny_eval.output.rglob("*") if p.is_file()]
    assert len(files) == 8  # results, eval.log, metrics, timing, the two tables, two raw files
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {oct(0o640)}
    assert "[WARNING]" not in tiny_eval.stderr and "Traceback" not in tiny_eval.stderr


def shapes_variant(shapes_dataset, folder, change):
    """A copy of the generated val split (images in <folder>/val) whose annotation file `change` edits in place ->
    the annotation file."""
    shutil.copytree(shapes_dataset / "val", folder / "val")
    data = json.loads((shapes_dataset / "annotations" / "instances_val.json").read_text())
    change(data, folder / "val")
    path = folder / "instances.json"
    path.write_text(json.dumps(data))
    return path


def truncate_second_image(data, image_dir):
    path = image_dir / data["images"][1]["file_name"]
    path.write_bytes(path.read_bytes()[:300])


def change_first_height(data, image_dir):
    data["images"][0]["height"] = 50


def drop_annotations(data, image_dir):
    data["annotations"] = []


@pytest.mark.parametrize("change, expected", [
    (truncate_second_image, "{image_dir}: 1 of the 2 images of {ann_file} cannot be evaluated, e.g. 000002.jpg: "
                            "not a readable image"),
    (change_first_height, "{image_dir}: 1 of the 2 images of {ann_file} cannot be evaluated, e.g. 000001.jpg: "
                          "96x96 (HxW), the annotation file says 50x96"),
    (drop_annotations, "{ann_file} has no non-crowd annotations on its 2 images: there is nothing to score"),
    (None, "--output_dir {output} exists and is not a folder"),
])
def test_eval_checks_images_annotations_and_output_before_the_model_loads(change, expected, shapes_dataset, tmp_path):
    ann_file = shapes_variant(shapes_dataset, tmp_path, change or (lambda data, image_dir: None))
    output = tmp_path / "out"
    if change is None:
        output.write_text("")
    proc = run_entry_point("eval.py", *TINY_MODEL, "--checkpoint_path", tmp_path / "never_read.ckpt", "--coco_root",
                           tmp_path, "--val_split", "val", "--ann_file", ann_file, "--output_dir", output)
    line = error_line(proc, "eval.py: error: ", alone=change is drop_annotations)  # others follow a progress bar
    assert expected.format(image_dir=tmp_path / "val", ann_file=ann_file, output=output) in line


def test_images_sharing_an_id_are_left_out_of_evaluation_with_their_annotations(shapes_dataset, tmp_path, caplog):
    def share_first_id(data, image_dir):
        data["images"].append(dict(data["images"][0], file_name="000002.jpg"))

    ann_file = shapes_variant(shapes_dataset, tmp_path, share_first_id)
    data = json.loads(ann_file.read_text())
    shared_id, other_id = data["images"][0]["id"], data["images"][1]["id"]
    with caplog.at_level(logging.WARNING):
        coco_gt = load_ground_truth(ann_file)
    assert sorted(coco_gt.imgs) == [other_id]
    assert {a["image_id"] for a in coco_gt.dataset["annotations"]} == {other_id}
    left_out = sum(a["image_id"] == shared_id for a in data["annotations"])
    assert (f"{ann_file}: 2 images share their id with another image (e.g. 000001.jpg, 000002.jpg); they and the "
            f"{left_out} annotations of their ids are left out of the evaluation") in caplog.text


def valid_raw(image_id=1, count=2, side=4):
    return RawDetections(image_id, (72, 96), (96, 128), np.tile(np.float32([1, 2, 30, 40]), (count, 1)),
                         np.full(count, 0.9, np.float32), np.zeros(count, np.int32),
                         np.full((count, side, side), 0.7, np.float32))


@pytest.mark.parametrize("change, message", [
    (lambda raw: raw.boxes.__setitem__((1, 2), np.nan), "boxes holds 1 non-finite values (NaN or Inf)"),
    (lambda raw: setattr(raw, "mask_probs", raw.mask_probs[:, 0]),
     "mask_probs must be a 3-D array of numbers, got float32 of shape (2, 4)"),
    (lambda raw: setattr(raw, "image_size", (0, 128)), "image_size (0, 128) must be two positive integers (h, w)"),
    (lambda raw: setattr(raw, "scores", raw.scores[:1]), "scores (1,), classes (2,) and mask_probs (2, 4, 4) are not "
                                                          "(D, 4), (D,), (D,) and (D, S, S) for one D"),
])
def test_raw_files_breaking_the_format_are_named(change, message, tmp_path):
    raw = valid_raw()
    change(raw)
    path = save_raw(raw, tmp_path)
    with pytest.raises(RawFileError) as error:
        load_raw(path)
    assert str(error.value).startswith(f"{path}: ") and str(error.value).endswith(message)


def test_postprogress_stops_at_a_raw_file_with_nan_on_a_line_of_its_own(shapes_dataset, tmp_path):
    ann_file = shapes_dataset / "annotations" / "instances_val.json"
    images = json.loads(ann_file.read_text())["images"]
    for image in images:
        raw = valid_raw(image["id"])
        raw.original_size = (image["height"], image["width"])
        if image is images[-1]:
            raw.scores[0] = np.nan
        save_raw(raw, tmp_path / "raw")
    proc = run_entry_point("postprogress.py", "--raw_dir", tmp_path / "raw", "--ann_file", ann_file,
                           "--output_dir", tmp_path / "out")
    line = error_line(proc, "postprogress.py: error: ", alone=False)  # after the log and the progress bar
    assert line.endswith(f"{tmp_path / 'raw' / str(images[-1]['id'])}.npz: scores holds 1 non-finite values (NaN or "
                         "Inf)")
    assert list((tmp_path / "out").iterdir()) == []

    (tmp_path / "taken").write_text("")
    proc = run_entry_point("postprogress.py", "--raw_dir", tmp_path / "raw", "--ann_file", ann_file,
                           "--output_dir", tmp_path / "taken")
    assert f"--output_dir {tmp_path / 'taken'} exists and is not a folder" in error_line(proc, "postprogress.py",
                                                                                         alone=False)


def ground_truth_raw(coco_gt, image_id, scale, side=56):
    """The image's non-crowd ground truth as raw outputs of a network that saw it resized by `scale`."""
    image = coco_gt.imgs[image_id]
    height, width = image["height"], image["width"]
    image_size = (round(height * scale), round(width * scale))
    sx, sy = image_size[1] / width, image_size[0] / height
    class_of = {c: i for i, c in enumerate(sorted(coco_gt.getCatIds()))}
    boxes, classes, masks = [], [], []
    for ann in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=[image_id], iscrowd=False)):
        x, y, w, h = ann["bbox"]
        crop = coco_gt.annToMask(ann)[int(y):int(np.ceil(y + h)), int(x):int(np.ceil(x + w))]
        masks.append(cv2.resize(crop.astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR))
        boxes.append([x * sx, y * sy, (x + w) * sx, (y + h) * sy])
        classes.append(class_of[ann["category_id"]])
    return RawDetections(image_id, (height, width), image_size, np.asarray(boxes, np.float32).reshape(-1, 4),
                         np.ones(len(boxes), np.float32), np.asarray(classes, np.int32),
                         np.asarray(masks, np.float32).reshape(-1, side, side))


@requires_shared
def test_postprogress_scores_ground_truth_raw_outputs_and_empty_ones(tmp_path):
    ann_file = write_subset(tmp_path / "subset.json", EVAL_IMAGE_IDS)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(ann_file))
    for image_id in EVAL_IMAGE_IDS:
        save_raw(ground_truth_raw(coco_gt, image_id, scale=1.6), tmp_path / "gt_raw")
    run_ok("postprogress.py", "--raw_dir", tmp_path / "gt_raw", "--ann_file", ann_file, "--output_dir", tmp_path / "gt")
    table = pd.read_csv(tmp_path / "gt" / "per_category_ap.csv")
    with_gt = table[table["gt_instances"] > 0]
    assert len(with_gt) >= 2 and np.allclose(with_gt["bbox_AP"], 1.0) and (with_gt["segm_AP"] > 0.5).all()

    for image_id in EVAL_IMAGE_IDS:
        empty = ground_truth_raw(coco_gt, image_id, scale=1.6)
        save_raw(RawDetections(image_id, empty.original_size, empty.image_size, empty.boxes[:0], empty.scores[:0],
                               empty.classes[:0], empty.mask_probs[:0]), tmp_path / "empty_raw")
    run_ok("postprogress.py", "--raw_dir", tmp_path / "empty_raw", "--ann_file", ann_file,
           "--output_dir", tmp_path / "empty")
    assert read_results(tmp_path / "empty") == []
    ap_lines = [line for line in stat_lines(tmp_path / "empty") if "(AP) @[ IoU=0.50:0.95 | area=   all" in line]
    assert len(ap_lines) == 3 and all(line.endswith("= 0.000") for line in ap_lines)


@pytest.mark.parametrize("script, args", [("run_eval.sh", ["0", "coco", "mindrecord"]),
                                          ("run_eval.sh", ["gpu0", "coco", "", "model.ckpt"]),
                                          ("run_eval_cpu.sh", ["coco", ""])])
def test_scripts_print_their_usage_on_wrong_arguments(script, args):
    proc = subprocess.run(["bash", str(REPO_ROOT / "scripts" / script), *args], capture_output=True, text=True)
    assert proc.returncode == 1 and f"Usage: bash scripts/{script}" in proc.stderr

