"""The full-resolution pipeline: sizes, the L channel, alpha, and the Python API."""

import os
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import tinct
from tinct.color import lightness
from tinct.models import build_model
from tinct.pipeline import Colorizer, _resize_rows, lightness_of, render_shape

from conftest import make_photo


@pytest.fixture(scope="module")
def colorizer(tiny_model_path):
    return Colorizer(tiny_model_path, render_size=64)


def _L(rgb_u8: np.ndarray) -> torch.Tensor:
    return lightness(torch.from_numpy(np.array(rgb_u8)).permute(2, 0, 1).float().div(255)[None])


@pytest.mark.parametrize("shape", [(1, 1), (7, 1000), (1000, 7), (3000, 4000)])
def test_output_size_equals_input_size(colorizer, shape):
    gray = np.full(shape, 128, np.uint8)
    gray[: shape[0] // 2] = 60
    out = colorizer.colorize(gray).to_pil()
    assert out.size == (shape[1], shape[0])


def test_output_keeps_the_input_lightness(colorizer):
    # A gray photo and a color photo: both are colorized from their own L, which the output keeps.
    # Measured: max |L_out - L_in| = 0.38 for 8-bit output (quantisation), 0.02 before quantising.
    for rgb in (np.repeat(make_photo(90, 120, 5).mean(2, keepdims=True).astype(np.uint8), 3, 2), make_photo(90, 120, 6)):
        res = colorizer.colorize(rgb)
        L_in = _L(rgb)
        L_float = lightness(torch.from_numpy(res.rgb).permute(2, 0, 1)[None])
        assert (L_float - L_in).abs().max() < 0.05
        out_u8 = np.asarray(res.to_pil())
        assert (_L(out_u8) - L_in).abs().max() < 0.6


def test_output_is_colored_and_in_gamut(tiny_model_path):
    model = tinct.load_model(tiny_model_path)
    with torch.no_grad():  # push the head towards a saturated color so that fitting to gamut matters
        model.squeeze[-1].bias.zero_()
        model.squeeze[-1].bias[21 * 22 + 21] = 50.0  # bin at (a, b) = (105, 105)
    res = Colorizer(model, render_size=64, decode="mode").colorize(np.full((20, 30), 200, np.uint8))
    assert 0.0 <= res.rgb.min() and res.rgb.max() <= 1.0
    assert np.ptp(res.rgb[10, 10]) > 0.05  # not gray
    assert (lightness(torch.from_numpy(res.rgb).permute(2, 0, 1)[None]) - _L(np.full((20, 30, 3), 200, np.uint8))).abs().max() < 0.05


def test_alpha_is_carried_unchanged(colorizer):
    rgba = np.dstack([make_photo(20, 25, 7), np.linspace(0, 255, 20 * 25).reshape(20, 25).astype(np.uint8)])
    out = colorizer.colorize(Image.fromarray(rgba, "RGBA")).to_pil()
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], rgba[..., 3])


def test_lightness_of_uint8_pixels_equals_the_float_path():
    """uint8 pixels (looked up in a table, strip by strip) give the L of the float copy: a whole
    scan never needs 12 bytes per pixel."""
    rgb = make_photo(70, 90, 9)
    for pixels in (rgb, np.broadcast_to(rgb[..., :1], rgb.shape)):  # colour, and grey as read_image keeps it
        floats = np.divide(pixels, 255, dtype=np.float32)
        L = lightness_of(pixels)
        assert L.shape == (1, 1, 70, 90)
        assert (L - lightness_of(floats)).abs().max() < 1e-4
        assert (L - lightness(torch.from_numpy(floats).permute(2, 0, 1)[None])).abs().max() < 1e-4


def test_lightness_of_a_gray_scan_looks_up_strip_by_strip():
    """The gray table lookup never turns a whole scan into int64 indices (8 bytes a pixel: 0.7 GB
    for a 90-MP scan): numpy's temporaries stay a strip's size."""
    import tracemalloc

    plane = np.random.default_rng(0).integers(0, 256, (2000, 2000), dtype=np.uint8)
    pixels = np.broadcast_to(plane[..., None], (2000, 2000, 3))
    tracemalloc.start()
    try:
        L = lightness_of(pixels)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2000 * 2000 * 2  # a full int64 index array would be 32 MB
    assert (L - lightness_of(np.ascontiguousarray(pixels))).abs().max() < 1e-4


def test_an_8bit_photo_colorizes_as_its_float_copy(colorizer):
    """The compact path (uint8 pixels, uint8 output straight from compose) equals the float one."""
    rgb = make_photo(60, 80, 10)
    eight = colorizer.colorize(rgb)
    deep = colorizer.colorize(rgb.astype(np.float32) / 255)
    assert eight.source.pixels.dtype == np.uint8 and deep.source.pixels.dtype == np.float32
    assert np.abs(eight.rgb - deep.rgb).max() < 1e-5
    as_u8 = colorizer.colorize(rgb, dtype=np.uint8).rgb
    assert as_u8.dtype == np.uint8 and np.array_equal(as_u8, (deep.rgb * 255 + 0.5).astype(np.uint8))


def test_colorize_files_frees_each_decoded_photo_before_encoding_it(colorizer, tmp_path, monkeypatch):
    """The decoded scan (3 bytes per pixel) is not kept alive while its output is encoded."""
    import gc
    import weakref

    import tinct.pipeline as pipeline

    decoded, alive_while_writing = [], []
    real_read, real_write = pipeline.tio.read_image, pipeline._write

    def read(*args, **kwargs):
        img = real_read(*args, **kwargs)
        decoded.append(weakref.ref(img))
        return img

    def write(*args, **kwargs):
        gc.collect()
        alive_while_writing.append(decoded[-1]() is not None)
        return real_write(*args, **kwargs)

    monkeypatch.setattr(pipeline.tio, "read_image", read)
    monkeypatch.setattr(pipeline, "_write", write)
    src = tmp_path / "a.png"
    Image.fromarray(make_photo(30, 40, 11)).save(src)
    done = []
    colorizer.colorize_files([(src, tmp_path / "out" / "a.png")], lambda *r: done.append(r))
    assert done == [(src, tmp_path / "out" / "a.png", None)] and alive_while_writing == [False]


def test_lanes_write_the_same_files_and_report_in_order(colorizer, tmp_path):
    """Several photos at once (one lane per PyTorch thread) give the files one lane gives, samples
    included (each lane's decoder is its own), and report every job once, in job order, a broken
    photo included; PyTorch's threads are restored."""
    src = tmp_path / "in"
    src.mkdir()
    jobs = []
    for i in range(7):
        path = src / f"p{i}.png"
        if i == 3:
            path.write_bytes(b"not a png")
        else:
            Image.fromarray(make_photo(30 + 5 * i, 40, i)).convert("L").save(path)
        jobs.append(path)
    threads = torch.get_num_threads()
    outputs = {}
    for lanes in (1, 3):
        done = []
        out = tmp_path / f"out{lanes}"
        colorizer.colorize_files([(p, out / p.name) for p in jobs], lambda *r, done=done: done.append(r), lanes=lanes,
                                 samples=1)
        assert [r[0] for r in done] == jobs and [r[2] is not None for r in done] == [i == 3 for i in range(7)]
        outputs[lanes] = {p.name: np.array(Image.open(p)) for p in sorted(out.iterdir())}
        assert torch.get_num_threads() == threads
    assert outputs[1].keys() == outputs[3].keys() and len(outputs[1]) == 12  # each photo and its sample
    assert all(np.array_equal(outputs[1][k], outputs[3][k]) for k in outputs[1])
    assert colorizer.method != "sample"  # a sample's decoder is its call's, never the colorizer's


def test_a_photo_too_big_to_share_runs_alone_on_every_thread(colorizer, tmp_path, monkeypatch):
    """With lanes, a photo larger than its share of LANE_PIXELS gets all of PyTorch's threads
    (and the budget to itself); the small ones get one each."""
    import tinct.pipeline as pipeline

    monkeypatch.setattr(pipeline, "LANE_PIXELS", 4000)  # shares of 2000 pixels for two lanes
    seen = {}
    real = Colorizer._run_job

    def spy(self, img, dst, *args):
        seen[dst.name] = torch.get_num_threads()
        return real(self, img, dst, *args)

    monkeypatch.setattr(Colorizer, "_run_job", spy)
    jobs = []
    for name, (h, w) in {"small.png": (30, 40), "big.png": (60, 80), "small2.png": (20, 30)}.items():
        Image.fromarray(make_photo(h, w, 1)).save(tmp_path / name)
        jobs.append((tmp_path / name, tmp_path / "out" / name))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        colorizer.colorize_files(jobs, lambda *r: None, lanes=2)
    finally:
        torch.set_num_threads(threads)
    assert seen == {"small.png": 1, "big.png": 2, "small2.png": 1}


def test_pixel_budget_lets_a_big_photo_run_alone():
    """Photos fit together within the budget; one larger than the budget waits for an empty lane."""
    import threading
    import time

    from tinct.pipeline import PixelBudget

    budget, order = PixelBudget(10), []
    release = threading.Event()

    def hold(name, pixels, wait=None):
        with budget.hold(pixels):
            order.append((name, budget.held))
            if wait is not None:
                wait.wait(5)

    small = threading.Thread(target=hold, args=("small", 6, release))
    small.start()
    time.sleep(0.05)
    big = threading.Thread(target=hold, args=("big", 25))
    other = threading.Thread(target=hold, args=("other", 4))
    big.start()
    other.start()
    other.join(5)
    time.sleep(0.05)
    assert order == [("small", 6), ("other", 10)]  # 6 + 4 fit; 25 waits
    release.set()
    for t in (small, big):
        t.join(5)
    assert order[-1] == ("big", 25) and budget.held == 0


def test_strip_resize_matches_full_bilinear():
    """Strips written into reused buffers (whatever they held) equal one full bilinear resize."""
    ab = torch.randn(1, 2, 13, 17)
    full = F.interpolate(ab, size=(101, 77), mode="bilinear", align_corners=False)
    wide = F.interpolate(ab, size=(13, 77), mode="bilinear", align_corners=False)
    out, scratch = torch.full((2, 10, 77), float("nan")), torch.full((2, 10, 77), float("nan"))
    strips = []
    for t in range(0, 101, 10):
        n = min(101, t + 10) - t
        got = _resize_rows(wide, 101, t, t + n, out=out[:, :n], scratch=scratch[:, :n])
        assert got.data_ptr() == out.data_ptr()
        strips.append(got.clone())
    assert torch.allclose(torch.cat(strips, dim=1).unsqueeze(0), full, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_compose_strips_equal_one_full_resolution_conversion(monkeypatch, dtype):
    """compose goes strip by strip through reused buffers, the last strip shorter: the same
    pixels as converting the whole bilinearly resized Lab image at once."""
    import tinct.pipeline as pipeline
    from tinct.color import lab_to_rgb_in_gamut

    g = torch.Generator().manual_seed(2)
    L, ab = torch.rand(1, 1, 53, 40, generator=g) * 100, torch.randn(1, 2, 7, 5, generator=g) * 40
    monkeypatch.setattr(pipeline, "STRIP_PIXELS", 40 * 10)  # six strips: 10, ..., 10, 3 rows
    got = Colorizer.compose(None, L, ab, dtype)
    full = F.interpolate(ab, size=(53, 40), mode="bilinear", align_corners=False)
    want = lab_to_rgb_in_gamut(torch.cat([L, full], dim=1))[0].permute(1, 2, 0).numpy()
    if dtype == np.uint8:
        want = (want * 255 + 0.5).astype(np.uint8)
        assert got.dtype == np.uint8 and np.abs(got.astype(int) - want).max() <= 1
    else:
        assert got.dtype == np.float32 and np.abs(got - want).max() < 1e-5


def test_render_shape_keeps_aspect():
    assert render_shape(3000, 4000, 384) == (288, 384)
    assert render_shape(7, 1000, 384) == (3, 384)
    assert render_shape(1, 1, 384) == (384, 384)


def test_api_accepts_path_pil_and_array(tiny_model_path, tmp_path):
    arr = make_photo(21, 34, 8)
    p = tmp_path / "x.png"
    Image.fromarray(arr).save(p)
    for src in (p, str(p), Image.fromarray(arr), arr, arr.astype(np.float32) / 255):
        out = tinct.colorize(src, model=tiny_model_path, render_size=64)
        assert isinstance(out, Image.Image) and out.size == (34, 21)


def test_api_bad_input_is_one_clear_error(tiny_model_path, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(tinct.imageio.ImageError, match="bad.jpg"):
        tinct.colorize(bad, model=tiny_model_path)
    with pytest.raises(ValueError, match="decodes with"):
        Colorizer(tiny_model_path, decode="median")


def test_decoder_errors_name_the_model_as_asked_and_say_when_there_is_no_choice(tiny_model_path):
    with pytest.raises(ValueError, match="model 'default' decodes with .*; got 'median'"):
        Colorizer(tinct.load_model(tiny_model_path), decode="median", name="default")
    regression = build_model("unet", width=4, depth=2).eval()
    for make in (lambda: Colorizer(regression, decode="median"), lambda: regression.check_method("median")):
        with pytest.raises(ValueError) as err:
            make()
        assert "'unet' predicts colors directly, so it has no decoder to choose; got 'median'" in str(err.value)
        assert "identity" not in str(err.value)


@pytest.fixture()
def count_loads(monkeypatch):
    """The weights files read (tinct.weights.load_weights calls) while the test runs."""
    import tinct.weights

    calls = []
    real = tinct.weights.load_weights
    monkeypatch.setattr(tinct.weights, "load_weights", lambda *a, **k: calls.append(a) or real(*a, **k))
    return calls


def test_api_loads_a_named_model_once(tiny_model_path, tmp_path, count_loads):
    weights = tmp_path / "w.safetensors"  # a path no other test used: not in the API's cache yet
    weights.write_bytes(tiny_model_path.read_bytes())
    gray = np.full((20, 30), 120, np.uint8)
    first = tinct.colorize(gray, model=weights, render_size=64)
    second = tinct.colorize(gray, model=str(weights), render_size=64, decode="mode")
    assert len(count_loads) == 1 and first.size == second.size == (30, 20)
    os.utime(weights, ns=(1_000_000_000, 1_000_000_000))  # the file changed: load it again
    tinct.colorize(gray, model=weights, render_size=64)
    assert len(count_loads) == 2


def test_api_namespace_is_the_api():
    assert not {"Any", "Path", "annotations"} & set(dir(tinct))
    public = {n for n in dir(tinct) if not n.startswith("_") and not isinstance(getattr(tinct, n), types.ModuleType)}
    assert public == set(tinct.__all__) - {"__version__"}  # besides the submodules


def test_api_says_decode_and_still_takes_method(tiny_model_path):
    gray = np.full((20, 30), 120, np.uint8)
    new = np.asarray(tinct.colorize(gray, model=tiny_model_path, render_size=64, decode="mode"))
    with pytest.warns(DeprecationWarning, match="decode="):
        old = np.asarray(tinct.colorize(gray, model=tiny_model_path, render_size=64, method="mode"))
    assert np.array_equal(new, old)
    with pytest.warns(DeprecationWarning, match="decode="):
        assert Colorizer(tiny_model_path, method="mode").method == "mode"
    with pytest.raises(TypeError, match="decode= only"), pytest.warns(DeprecationWarning):
        tinct.colorize(gray, model=tiny_model_path, decode="mode", method="annealed")


def test_a_process_that_ends_while_the_gamut_table_is_built_exits_cleanly(tiny_model_path):
    """Colorizer starts the gamut table on another thread; a program that ends right away must
    exit normally (a daemon thread inside PyTorch at finalization aborted the process)."""
    import subprocess
    import sys

    code = f"from tinct.pipeline import Colorizer; Colorizer({str(tiny_model_path)!r})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "terminate" not in out.stderr, out.stderr
