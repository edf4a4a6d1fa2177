"""The Space as a user meets it: an app on 127.0.0.1, called by gradio_client and driven in Chromium."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image
from test_training_controls import joint_model as joint_model_fixture  # noqa: F401 - a fixture: a joint model
from test_training_controls import run_recipe

from conftest import CLI, REPO

EXAMPLES = REPO / "space" / "examples"
SCREENSHOTS = REPO / "outputs" / "screenshots"
ARTIFACTS = REPO / "test-artifacts"  # kept after the run (ignored by git): what the browser tests saw
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True, scope="module")
def torch_threads_restored():
    """`launch` sets the process's torch threads for serving; the tests after these train with all of them."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir(trained_model) -> Path:
    return trained_model


@pytest.fixture(scope="module")
def predictor(model_dir):
    from polyglot_vision.serving import Predictor

    return Predictor.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def app(predictor):
    from polyglot_vision.serving.demo import launch

    demo = launch(predictor, host="127.0.0.1", port=free_port(), block=False, quiet=True)
    assert demo.local_url.startswith("http://127.0.0.1:")
    yield demo
    demo.close()


@pytest.fixture(scope="module")
def client(app):
    from gradio_client import Client

    return Client(app.local_url, verbose=False)


def expected_labels(predictor, path: Path, language: str, hint: str | None = None) -> list[str]:
    """What the page should show: the predictor's own top-5, named "name (concept)" in `language`."""
    from polyglot_vision.serving.demo import TOP_K

    [preds] = predictor.top_k([path], k=TOP_K, language=language, hint=hint)
    return [f"{p.name} ({p.concept})" for p in preds]


def predict(client, path, language="en", script=""):
    from gradio_client import handle_file

    label, note = client.predict(handle_file(str(path)), language, script, api_name="/predict")
    return label, note


# --------------------------------------------------------------------------------------------------
# gradio_client round trips
# --------------------------------------------------------------------------------------------------


def test_examples_cover_many_scripts_as_small_pngs():
    files = sorted(EXAMPLES.glob("*.png"))
    assert 10 <= len(files) <= 14
    scripts = {f.stem.split("-")[0] for f in files}
    assert {"latn", "arab", "deva", "beng", "thai", "hani", "mnist"} <= scripts
    for f in files:
        assert f.stat().st_size < 8_000, f
        with Image.open(f) as image:
            assert image.size == (64, 64)


def test_client_predicts_an_example_in_french(client, predictor):
    seven = EXAMPLES / "latn-7.png"
    label, note = predict(client, seven, "fr")
    shown = [c["label"] for c in label["confidences"]]
    assert shown == expected_labels(predictor, seven, "fr")
    french = {f"{name} ({concept})" for concept, name in predictor.label_space.names_by_language()["fr"].items()}
    assert set(shown) <= french and len(shown) == 5
    assert {"sept (7)", "zéro (0)", "cinq (5)"} <= french
    assert label["label"] == shown[0]
    scores = [c["confidence"] for c in label["confidences"]]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001
    assert note == ""


def test_client_answers_in_hindi_and_arabic_and_reads_a_hint(client, predictor):
    deva = EXAMPLES / "deva-6.png"
    label, note = predict(client, deva, "hi", "hi")
    assert [c["label"] for c in label["confidences"]] == expected_labels(predictor, deva, "hi", hint="hi")
    assert note.startswith("Read as") and note.endswith("(hi).")
    label, _ = predict(client, deva, "ar")
    assert label["label"] in {f"{n} ({c})" for c, n in predictor.label_space.names_by_language()["ar"].items()}


def test_bad_uploads_get_a_clear_message_and_the_server_keeps_serving(client, predictor, tmp_path):
    not_image = tmp_path / "notes.png"
    not_image.write_text("these are my notes, not a picture", encoding="utf-8")
    label, note = predict(client, not_image, "fr")
    assert not label and "not an image" in note  # an empty answer and the reason, not an error

    huge = tmp_path / "huge.png"
    Image.new("L", (10_000, 5_000), 255).save(huge)  # 50 megapixels, a few hundred KB on disk
    assert huge.stat().st_size < 2_000_000
    label, note = predict(client, huge, "fr")
    assert not label and "10000×5000 pixels (50 megapixels); the limit is 40 megapixels" in note

    truncated = tmp_path / "truncated.png"
    truncated.write_bytes((EXAMPLES / "latn-7.png").read_bytes()[:200])
    label, note = predict(client, truncated, "fr")
    assert not label and ("damaged" in note or "not an image" in note)

    label, _ = predict(client, EXAMPLES / "thai-4.png", "th")
    assert [c["label"] for c in label["confidences"]] == expected_labels(predictor, EXAMPLES / "thai-4.png", "th")


# --------------------------------------------------------------------------------------------------
# A crowd: batches, malformed calls, a full queue (Gradio's plain HTTP API, as the load benchmark uses it)
# --------------------------------------------------------------------------------------------------


async def upload(http, path: Path, tag: str) -> dict:
    """POST /gradio_api/upload a distinct copy of `path` (bytes after a PNG's end are ignored) -> FileData."""
    files = {"files": (path.name, path.read_bytes() + tag.encode(), "image/png")}
    response = await http.post("/gradio_api/upload", files=files)
    response.raise_for_status()
    return {"path": response.json()[0], "meta": {"_type": "gradio.FileData"}}


async def call(http, data: list) -> tuple[int, object]:
    """POST /gradio_api/call/predict, then read its event stream: (status, outputs | error | refusal detail)."""
    response = await http.post("/gradio_api/call/predict", json={"data": data})
    if response.status_code != 200:
        return response.status_code, response.json().get("detail")
    stream = await http.get(f"/gradio_api/call/predict/{response.json()['event_id']}")
    event, payload = None, None
    for line in stream.text.splitlines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:") and event in ("complete", "error"):
            payload = (event, json.loads(line[5:]))
    return 200, payload


def crowd(url: str, requests) -> list:
    """Run `requests(http)` (coroutines) at once against the app at `url`; their results in order."""
    import httpx

    async def main():
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
            return await asyncio.gather(*await requests(http))

    return asyncio.run(main())


def test_a_malformed_call_or_a_bad_file_does_not_fail_its_batch_mates(app, predictor, tmp_path):
    from gradio.utils import get_upload_folder

    seven, not_image = EXAMPLES / "latn-7.png", tmp_path / "notes.png"
    not_image.write_text("not a picture", encoding="utf-8")
    secret = tmp_path / "secret.png"
    secret.write_bytes(seven.read_bytes())
    uploads = Path(get_upload_folder())
    climbing = str(uploads / "0123abcd" / ".." / ".." / ".." / secret.relative_to("/"))  # climbs out of the folder
    link = uploads / "0123abcd" / "link.png"  # a link inside the upload folder, to a file outside it
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(secret)

    def file(path):
        return {"path": str(path), "meta": {"_type": "gradio.FileData"}}

    async def requests(http):
        good = [await upload(http, seven, f"good-{i}") for i in range(16)]
        bad_file = await upload(http, not_image, "bad")
        calls = [call(http, [file, "fr", ""]) for file in good[:8]]
        calls += [
            call(http, [None]),  # too few inputs: Gradio would cut every request of its batch short
            call(http, [123, "fr", ""]),  # not a file
            call(http, [file("/etc/hostname"), "fr", ""]),  # not uploaded
            call(http, [bad_file, "fr", ""]),  # uploaded, but not an image
            call(http, [good[0], 5, ["x"]]),  # wrong types for the language and the hint
            call(http, [file(climbing), "fr", ""]),
            call(http, [file(link), "fr", ""]),
            call(http, [file(link), "fr", ""]),  # asked again: the same answer
        ]
        return calls + [call(http, [file, "fr", ""]) for file in good[8:]]

    results = crowd(app.local_url, requests)
    link.unlink()
    good = results[:8] + results[-8:]
    assert len(results) == 8 + 8 + 8
    expected = expected_labels(predictor, seven, "fr")
    for status, (event, outputs) in good:
        assert status == 200 and event == "complete"
        assert [c["label"] for c in outputs[0]["confidences"]] == expected
    too_few, not_a_file, not_uploaded, bad_file, odd_types = results[8:13]
    assert too_few == (422, 'This endpoint takes 3 inputs in "data".')
    assert not_a_file[0] == 422 and "file input must be" in not_a_file[1]
    assert not_uploaded[0] == 422 and "not uploaded to this server" in not_uploaded[1]
    assert bad_file[0] == 200 and bad_file[1][0] == "complete"
    assert not bad_file[1][1][0] and "not an image" in bad_file[1][1][1]
    assert odd_types[0] == 200 and odd_types[1][0] == "complete"
    assert odd_types[1][1][0]["confidences"]  # answered in the default language
    for status, detail in results[13:16]:
        assert status == 422 and "not uploaded to this server" in detail


def test_one_batch_reads_each_request_with_its_own_language_and_hint_in_one_model_call(joint_model_fixture):  # noqa: F811
    from polyglot_vision.serving import Predictor
    from polyglot_vision.serving.demo import MAX_BATCH_SIZE, TOP_K, _answer_note, build_demo

    folder, image = joint_model_fixture
    predictor = Predictor.from_pretrained(folder)
    forward, calls = predictor.model.forward, []

    def counted_forward(*args, **kwargs):
        calls.append(kwargs["pixel_values"].shape[0])
        return forward(*args, **kwargs)

    predictor.model.forward = counted_forward
    demo = build_demo(predictor)
    [hint_control] = [c for c in demo.config["components"] if c.get("props", {}).get("elem_id") == "pv-script"]
    assert hint_control["props"]["visible"] is True  # a joint model takes a hint
    assert ("ไทย", "th") in [tuple(choice) for choice in hint_control["props"]["choices"]]
    [predict_fn] = [fn for fn in demo.fns.values() if fn.api_name == "predict"]
    assert predict_fn.batch and predict_fn.max_batch_size == MAX_BATCH_SIZE

    requests = [("fr", ""), ("en", "th"), ("th", "en"), ("fr", "de")]
    labels, notes = predict_fn.fn([str(image)] * 4, [lang for lang, _ in requests], [hint for _, hint in requests])
    assert calls == [4]  # one model call for the batch
    for (language, hint), label in zip(requests[:3], labels):
        [expected] = predictor.top_k([image], k=TOP_K, language=language, hint=hint or None)
        assert list(label) == [f"{p.name} ({p.concept})" for p in expected]
        assert list(label.values()) == pytest.approx([p.score for p in expected])
    # without a hint the note names both readings when the model is split between two scripts, else nothing
    [first] = predictor.top_k([image], k=TOP_K, language="fr")
    assert notes[:3] == [_answer_note(first), "Read as ไทย (th).", "Read as English (en)."]
    assert labels[3] is None and "'de'" in notes[3]  # a hint the model does not know: that request only


def test_a_concept_model_says_it_takes_no_hint(polydigits_dir, tmp_path):
    from polyglot_vision.serving import Predictor
    from polyglot_vision.serving.demo import TOP_K, build_demo

    run_recipe(polydigits_dir, tmp_path / "model", label_granularity="concept")
    predictor = Predictor.from_pretrained(tmp_path / "model")
    demo = build_demo(predictor)
    [hint_control] = [c for c in demo.config["components"] if c.get("props", {}).get("elem_id") == "pv-script"]
    assert hint_control["props"]["visible"] is False
    [predict_fn] = [fn for fn in demo.fns.values() if fn.api_name == "predict"]
    deva = EXAMPLES / "deva-6.png"
    [label], [note] = predict_fn.fn([str(deva)], ["hi"], ["hi"])
    [expected] = predictor.top_k([deva], k=TOP_K, language="hi")
    assert list(label) == [f"{p.name} ({p.concept})" for p in expected]
    assert "not used" in note and "one classifier" in note


def test_a_burst_larger_than_the_queue_is_told_to_try_again_and_the_server_answers_afterwards(model_dir):
    from gradio_client import Client

    from polyglot_vision.serving import Predictor
    from polyglot_vision.serving.demo import BUSY_MESSAGE, launch

    slow = Predictor.from_pretrained(model_dir)
    fast = slow.class_probabilities

    def slow_probabilities(images):  # a model slow enough that the burst arrives while it works
        time.sleep(0.3)
        return fast(images)

    slow.class_probabilities = slow_probabilities
    demo = launch(slow, port=free_port(), block=False, quiet=True, max_queue=4, max_batch_size=2)
    seven = EXAMPLES / "latn-7.png"
    try:

        async def requests(http):
            files = [await upload(http, seven, f"burst-{i}") for i in range(40)]
            return [call(http, [file, "fr", ""]) for file in files]

        started = time.perf_counter()
        results = crowd(demo.local_url, requests)
        assert time.perf_counter() - started < 30  # no hang
        answered = [r for r in results if r[0] == 200]
        refused = [r for r in results if r[0] != 200]
        assert refused and all(r == (503, BUSY_MESSAGE) for r in refused)
        assert "busy" in BUSY_MESSAGE and "try again" in BUSY_MESSAGE
        assert 5 <= len(answered) < 40
        for _, (event, outputs) in answered:
            assert event == "complete" and outputs[0]["label"]

        label, _ = predict(Client(demo.local_url, verbose=False), seven, "fr")  # served normally afterwards
        assert label["label"] == expected_labels(slow, seven, "fr")[0]
    finally:
        demo.close()


def test_the_load_benchmark_measures_every_client_with_the_same_and_distinct_images(model_dir, tmp_path):
    import sys

    report_file = tmp_path / "space.json"
    command = [sys.executable, str(REPO / "scripts" / "benchmark_space.py"), str(model_dir), "--burst", "6"]
    command += ["--rounds", "1", "--rate", "10", "--duration", "1", "--processes", "2", "--output", str(report_file)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(report_file.read_text(encoding="utf-8"))
    measured = [(r["client"], r["images"], r["load"]) for r in report["runs"]]
    clients = ("httpx", "browser", "gradio_client", "floor")
    bursts = [(client, images, "burst of 6") for client in clients for images in ("same", "distinct")]
    assert set(measured) == set(bursts) | {("httpx", "same", "10/s for 1 s"), ("httpx", "distinct", "10/s for 1 s")}
    for load in report["runs"]:
        assert load["errors"] == 0 and load["ok"] == load["requests"], load
        assert 0 < load["latency_s"]["p50"] <= load["latency_s"]["p95"] <= load["latency_s"]["p99"]
        assert load["throughput_rps"] > 0 and load["server_cpu_ms_per_request"] > 0
    assert report["afterwards"]["answer"] == "ok"
    assert "gradio_client distinct       burst of 6: 6/6 answered, 0 errors" in run.stderr


def test_a_client_that_waits_between_two_calls_is_answered_on_the_same_connection(app):
    import http.client

    # httpx keeps an idle connection 5 s, as long as uvicorn's default: a call sent then meets a closing server
    connection = http.client.HTTPConnection("127.0.0.1", int(app.local_url.rsplit(":", 1)[1].strip("/")), timeout=10)
    try:
        connection.request("GET", "/gradio_api/info")
        first = connection.getresponse()
        first.read()
        socket_before = connection.sock
        time.sleep(6)
        connection.request("GET", "/gradio_api/info")
        second = connection.getresponse()
        assert (first.status, second.status) == (200, 200) and second.read()
        assert connection.sock is socket_before  # the server kept it open
    finally:
        connection.close()


def test_sketch_is_flattened_onto_white_paper():
    from polyglot_vision.serving.demo import flatten_sketch

    canvas = Image.new("RGBA", (280, 280), (0, 0, 0, 0))  # what the sketchpad sends: transparent paper
    canvas.paste((0, 0, 0, 255), (130, 60, 150, 220))  # one black stroke
    flat = flatten_sketch(canvas)
    assert flat.mode == "RGB" and flat.width == flat.height
    assert flat.getpixel((0, 0)) == (255, 255, 255)  # paper is white, not black
    assert flat.getpixel((flat.width // 2, flat.height // 2)) == (0, 0, 0)  # ink stays dark
    assert 160 < flat.height < 280  # cropped to the ink, with a margin
    assert flatten_sketch(Image.new("RGBA", (280, 280), (0, 0, 0, 0))) is None  # nothing drawn yet


def test_client_reads_a_drawing_from_the_sketchpad(client, predictor, tmp_path):
    from gradio_client import handle_file

    from polyglot_vision.serving.demo import TOP_K, flatten_sketch

    drawing = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    drawing.paste((0, 0, 0, 255), (130, 60, 150, 220))  # a "1" in black ink on transparent paper
    drawing.save(tmp_path / "sketch.png")
    sketch = {"background": None, "layers": [], "composite": handle_file(str(tmp_path / "sketch.png"))}
    label, _ = client.predict(sketch, "de", "", api_name="/predict_sketch")
    [preds] = predictor.top_k([flatten_sketch(drawing)], k=TOP_K, language="de")
    assert [c["label"] for c in label["confidences"]] == [f"{p.name} ({p.concept})" for p in preds]
    assert label["label"] in {f"{n} ({c})" for c, n in predictor.label_space.names_by_language()["de"].items()}


def test_language_picker_names_languages_in_themselves():
    from polyglot_vision.serving.demo import language_choices

    assert language_choices(["fr", "ar", "hi", "zh", "xx-unknown"]) == [
        ("Français", "fr"),
        ("العربية", "ar"),
        ("हिन्दी", "hi"),
        ("中文", "zh"),
        ("xx-unknown", "xx-unknown"),
    ]


def test_without_model_id_the_app_starts_and_says_how_to_set_it():
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from polyglot_vision.serving.demo import build_demo, launch, load_predictor_or_message

    predictor, notice = load_predictor_or_message("")
    assert predictor is None and "MODEL_ID" in notice
    page_text = str(build_demo(None, notice=notice).config)
    assert "Set the environment variable" in page_text and "MODEL_ID" in page_text

    demo = launch(None, port=free_port(), block=False, quiet=True, notice=notice)
    try:
        with pytest.raises(AppError, match="set MODEL_ID"):
            predict(Client(demo.local_url, verbose=False), EXAMPLES / "latn-7.png", "en")
    finally:
        demo.close()


def test_demo_command_reports_a_missing_model_folder():
    run = subprocess.run([*CLI, "demo", "outputs/no/such-model"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == ["polyglot-vision: error: model folder outputs/no/such-model not found"]


def test_space_folder_is_complete():
    import gradio

    readme = (REPO / "space" / "README.md").read_text(encoding="utf-8")
    front = yaml.safe_load(readme.split("---")[1])
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py"
    assert front["sdk_version"] == gradio.__version__
    assert front["models"] and {"title", "emoji", "colorFrom", "colorTo", "short_description", "license"} <= set(front)
    assert len(front["short_description"]) <= 60
    assert (REPO / "space" / "app.py").is_file()
    requirements = (REPO / "space" / "requirements.txt").read_text(encoding="utf-8")
    assert "polyglot-vision[demo]" in [line.strip() for line in requirements.splitlines()]


# --------------------------------------------------------------------------------------------------
# A real browser
# --------------------------------------------------------------------------------------------------


def test_browser_upload_then_switch_language(app, predictor):
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} is missing: run .ci/install-browser"
    from playwright.sync_api import expect, sync_playwright

    seven = EXAMPLES / "latn-7.png"
    english, french, arabic = (expected_labels(predictor, seven, lang) for lang in ("en", "fr", "ar"))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-US")
            page.goto(app.local_url)
            page.locator("#pv-image input[type=file]").set_input_files(str(seven))
            result = page.locator("#pv-result")
            expect(page.locator("#pv-image img").first).to_be_visible(timeout=20_000)  # the uploaded numeral
            for text in english:
                expect(result).to_contain_text(text, timeout=20_000)

            page.locator("#pv-language input").click()
            page.locator("#pv-language li[aria-label='Français']").click()
            for text in french:
                expect(result).to_contain_text(text, timeout=20_000)
            for text in set(english) - set(french):
                expect(result).not_to_contain_text(text)
            page.wait_for_timeout(500)  # let the closing option list fade out
            shot = SCREENSHOTS / "demo.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")

            page.locator("#pv-language input").click()
            page.locator("#pv-language li[aria-label='العربية']").click()
            expect(result).to_contain_text(arabic[0], timeout=20_000)
            page.wait_for_timeout(500)  # let the closing option list fade out
            direction = result.locator(".output-class").evaluate("el => getComputedStyle(el).unicodeBidi")
            assert direction == "plaintext"  # an Arabic name is laid out right-to-left
            shot_ar = SCREENSHOTS / "demo-ar.png"
            page.screenshot(path=str(shot_ar), full_page=True)
            print(f"screenshot: {shot_ar}")
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000


def test_a_numeral_drawn_with_the_mouse_is_answered_in_the_language_chosen(app, predictor, monkeypatch):
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} is missing: run .ci/install-browser"
    from playwright.sync_api import expect, sync_playwright

    from polyglot_vision.serving.demo import TOP_K, _answer_note

    drawings: list[Image.Image] = []  # what the server read from the page, as the model gets it
    read = predictor.class_probabilities

    def reading(images):
        drawings.extend(image.copy() for image in images)
        return read(images)

    monkeypatch.setattr(predictor, "class_probabilities", reading)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-US")
            page.goto(app.local_url)
            page.locator("#pv-language input").click()
            page.locator("#pv-language li[aria-label='Français']").click()
            page.get_by_role("tab", name="Draw").click()
            page.locator("#pv-sketch button[aria-label='Brush']").first.click()

            # A "7": a bar, then a stroke down to the left, in one movement of the pressed mouse.
            paper = page.locator("#pv-sketch canvas").first.bounding_box()
            side = min(paper["width"], paper["height"]) * 0.8
            left, top = paper["x"] + (paper["width"] - side) / 2, paper["y"] + (paper["height"] - side) / 2
            points = [(0.3, 0.25), (0.7, 0.25), (0.45, 0.8)]
            page.mouse.move(left + side * points[0][0], top + side * points[0][1])
            page.mouse.down()
            for (x0, y0), (x1, y1) in zip(points, points[1:]):
                for step in range(1, 11):
                    t = step / 10
                    page.mouse.move(left + side * (x0 + (x1 - x0) * t), top + side * (y0 + (y1 - y0) * t))
            page.mouse.up()

            result = page.locator("#pv-result")
            expect(result.locator(".output-class")).to_have_text(re.compile(r".+ \(\d\)"), timeout=30_000)
            shown = result.inner_text()
            note = page.locator("#pv-note").inner_text().strip()
            language = page.locator("#pv-language input").input_value()
            shot = ARTIFACTS / "sketchpad-drawn.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
        finally:
            browser.close()

    assert len(drawings) == 1, "one stroke, one answer"
    ink = drawings[0].convert("L").point(lambda v: 255 if v < 128 else 0)  # the drawing: white paper, dark ink
    left, top, right, bottom = ink.getbbox()
    width, height = right - left, bottom - top
    assert 1.2 < height / width < 1.6  # the 7 drawn is 0.55 high and 0.4 wide, plus the brush

    def inked(y: int) -> list[float]:  # where row y is dark, from 0 (left) to 1 (right)
        return [(x - left) / width for x in range(left, right) if ink.getpixel((x, y))]

    bar, foot = inked(top + max(1, height // 25)), inked(bottom - 1 - max(1, height // 25))
    assert len(bar) > 0.8 * width  # a bar across the top
    assert foot and max(foot) < 0.6  # and a stroke that ends at the lower left

    [answer] = read(drawings)  # the model's own answer to what was drawn, named in French
    [answer] = predictor.rank(answer[None], TOP_K, "fr")
    french = {f"{name} ({concept})" for concept, name in predictor.label_space.names_by_language()["fr"].items()}
    names = [f"{p.name} ({p.concept})" for p in answer]
    assert set(names) <= french
    assert language == "Français"
    assert shown.splitlines()[1] == names[0]  # the answer, first and named in French
    for name in names:
        assert name in shown
    assert note == _answer_note(answer)
    assert shot.stat().st_size > 10_000
    [sketchpad] = [block for block in app.blocks.values() if getattr(block, "elem_id", None) == "pv-sketch"]
    assert not sketchpad.blob_storage  # the drawing the page posted is not kept once answered


def test_the_demo_of_an_objects_model_looks_like_a_demo_of_objects(write_objects_recipe):
    import json

    from polyglot_vision.labels import LabelSpace
    from polyglot_vision.modeling import build_image_processor, build_model
    from polyglot_vision.serving import Predictor
    from polyglot_vision.serving.demo import build_demo
    from polyglot_vision.training import load_recipe

    recipe = load_recipe(write_objects_recipe())
    model = build_model(recipe.model, LabelSpace.from_yaml(recipe.data.label_space))
    demo = build_demo(Predictor(model, build_image_processor(recipe.model), device="cpu"))
    page = json.dumps(demo.config, ensure_ascii=False, default=str)
    assert "polyglot-vision · objects" in page and "cat" in page and "Fahrrad" not in page
    for word in ("numeral", "digit", "Devanagari", "13 "):
        assert word not in page, word
    [hint] = [c for c in demo.config["components"] if c.get("props", {}).get("elem_id") == "pv-script"]
    assert hint["props"]["visible"] is False  # a concept model takes no hint: the control is hidden
