"""infer.py end to end with a tiny model on generated images: unique image ids and overlay names, the categories of
a model that names none, 16-bit images, inputs and output locations checked before the model loads, output files
with the umask's permissions, and one line for each error."""
import json
import os
import shutil
import stat

import numpy as np
import pytest
from PIL import Image

from conftest import SHAPE_CLASSES, TINY_MODEL, error_line, run_entry_point
from maskrcnn_pointrend.data.transforms import read_image_bgr
from maskrcnn_pointrend.image_names import image_ids, overlay_names
from maskrcnn_pointrend.raw_detections import load_raw

UMASK = 0o027


@pytest.fixture(scope="module")
def inputs(shapes_dataset, tmp_path_factory):
    """Three images whose names would collide: a/1.jpg, b/1.png (16 bits per pixel) and gray.jpg."""
    folder = tmp_path_factory.mktemp("infer_inputs")
    (folder / "a").mkdir()
    (folder / "b").mkdir()
    shutil.copy(shapes_dataset / "val" / "000001.jpg", folder / "a" / "1.jpg")
    gray = np.asarray(Image.open(shapes_dataset / "val" / "000002.jpg").convert("L"))
    Image.fromarray(gray.astype(np.uint16) * 257).save(folder / "b" / "1.png")  # 16-bit: v * 257 >> 8 = v
    Image.fromarray(gray).save(folder / "gray.jpg")
    return folder, [folder / "a" / "1.jpg", folder / "b" / "1.png", folder / "gray.jpg"], gray


@pytest.fixture(scope="module")
def infer_run(tiny_checkpoint, inputs, shapes_dataset, tmp_path_factory):
    """infer.py on the three images with --visualize (drawing no detection), --save_raw and the shape categories,
    under umask 027."""
    _, images, _ = inputs
    output = tmp_path_factory.mktemp("infer")
    proc = run_entry_point("infer.py", *TINY_MODEL, "--checkpoint", tiny_checkpoint,
                           *[arg for image in images for arg in ("--image", image)], "--output", output / "dets.json",
                           "--visualize", output / "overlays", "--save_raw", output / "raw",
                           "--categories", shapes_dataset / "annotations" / "instances_val.json",
                           "--test.visualize_score_thresh=1.01", umask=UMASK)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[WARNING]" not in proc.stderr
    return output


def test_image_ids_are_numbered_names_when_distinct_else_positions():
    assert image_ids(["x/000000397133.jpg", "y/12.png"]) == [397133, 12]
    assert image_ids(["1.jpg", "gray.jpg"]) == [0, 1]
    assert image_ids(["1.jpg", "001.png"]) == [0, 1]  # the same number
    assert overlay_names(["a/x.jpg", "b/y.jpg"], [0, 1]) == ["x.png", "y.png"]
    assert overlay_names(["a/1.jpg", "b/1.png", "1_1.jpg"], [0, 1, 2]) == ["0_1.png", "1_1.png", "2_1_1.png"]


def test_every_image_keeps_its_own_id_raw_file_and_overlay(infer_run, inputs):
    results = json.loads((infer_run / "dets.json").read_text())
    assert {r["image_id"] for r in results} == {0, 1, 2}
    assert sorted(p.name for p in (infer_run / "raw").iterdir()) == ["0.npz", "1.npz", "2.npz"]
    assert [load_raw(infer_run / "raw" / f"{i}.npz").image_id for i in range(3)] == [0, 1, 2]
    assert sorted(p.name for p in (infer_run / "overlays").iterdir()) == ["0_1.png", "1_1.png", "2_gray.png"]


def test_results_name_the_given_categories(infer_run, shapes_dataset):
    results = json.loads((infer_run / "dets.json").read_text())
    categories = json.loads((shapes_dataset / "annotations" / "instances_val.json").read_text())["categories"]
    assert results and {r["category_id"] for r in results} <= {c["id"] for c in categories}


def test_a_16_bit_image_is_seen_scaled_to_8_bits(infer_run, inputs):
    _, _, gray = inputs
    # no detection reaches test.visualize_score_thresh: the overlay is the image the network saw
    overlay = read_image_bgr(infer_run / "overlays" / "1_1.png")
    np.testing.assert_array_equal(overlay, np.repeat(gray[:, :, None], 3, axis=2))


def test_output_files_have_the_permissions_of_the_umask(infer_run):
    files = [infer_run / "dets.json", *(infer_run / "raw").iterdir(), *(infer_run / "overlays").iterdir()]
    assert {oct(stat.S_IMODE(os.stat(f).st_mode)) for f in files} == {oct(0o666 & ~UMASK)}


@pytest.mark.parametrize("problem", ["no_categories", "other_count"])
def test_a_model_without_categories_needs_as_many_as_it_has_classes(problem, tiny_checkpoint, inputs, tmp_path):
    _, images, _ = inputs
    args = [*TINY_MODEL, "--checkpoint", tiny_checkpoint, "--image", images[0], "--output", tmp_path / "dets.json"]
    if problem == "other_count":
        categories = tmp_path / "three.json"
        categories.write_text(json.dumps([{"id": i, "name": f"c{i}"} for i in range(3)]))
        line = error_line(run_entry_point("infer.py", *args, "--categories", categories), "infer.py: error: ")
        assert f"checkpoint {tiny_checkpoint} predicts {SHAPE_CLASSES} classes, {categories} has 3 categories" in line
    else:
        line = error_line(run_entry_point("infer.py", *args), "infer.py: error: ")
        assert f"predicts {SHAPE_CLASSES} classes and names no categories" in line and "--categories" in line
    assert not (tmp_path / "dets.json").exists()


@pytest.mark.parametrize("problem", ["truncated", "float", "output_is_a_folder", "visualize_is_a_file"])
def test_a_bad_input_or_output_location_is_named_before_the_model_loads(problem, tiny_checkpoint, inputs, tmp_path):
    _, images, _ = inputs
    image, output, visualize = images[1], tmp_path / "dets.json", tmp_path / "overlays"
    if problem == "truncated":
        image = tmp_path / "truncated.jpg"
        data = images[0].read_bytes()
        image.write_bytes(data[:len(data) // 2])
        expected = f"cannot read image {image}: not a readable image"
    elif problem == "float":
        image = tmp_path / "float.tiff"
        Image.fromarray(np.zeros((8, 8), np.float32)).save(image)
        expected = f"cannot read image {image}: 32-bit floating-point pixels (Pillow mode F) have no defined range"
    elif problem == "output_is_a_folder":
        output.mkdir()
        expected = f"--output {output} is a folder"
    else:
        visualize.write_text("")
        expected = f"--visualize {visualize} exists and is not a folder"
    proc = run_entry_point("infer.py", *TINY_MODEL, "--checkpoint", tiny_checkpoint, "--image", images[0],
                           "--image", image, "--output", output, "--visualize", visualize)
    assert expected in error_line(proc, "infer.py: error: ")
    assert "loaded" not in proc.stderr and not os.path.isfile(output)
