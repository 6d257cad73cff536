"""The page `streamasr serve` ships, in a real browser: Debian's chromium, headless,
driven by selenium, with a fake microphone playing a test WAV. The page resamples the
microphone (the AudioContext runs at the device rate) to 16 kHz int16 in its
AudioWorklet and streams it; the transcript it shows must equal `streamasr transcribe`
of the audio the server received (recorded with --record-dir)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time

import pytest
import soundfile as sf

from helpers.common import REPO, audio_paths, cli
from streamasr.export.sherpa_check import free_port

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture()
def server(random_model_folder, tmp_path):
    port, record = free_port(), tmp_path / "received"
    process = subprocess.Popen([sys.executable, "-m", "streamasr.cli", "serve", "--model", str(random_model_folder),
                                "--port", str(port), "--record-dir", str(record), "--threads", "1"],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, process.stdout.read()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
    yield port, record
    process.terminate()
    assert process.wait(timeout=30) == 0  # SIGTERM: a graceful exit


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="chromium / chromium-driver not installed "
                    "(tools/install.sh installs them with apt as root)")
def test_page_transcribes_the_microphone_in_chromium(server, tiny_corpus, random_model_folder, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port, record = server
    wav = audio_paths(tiny_corpus)[0]
    seconds = sf.info(wav).duration
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
                 "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={wav}%noloop",
                 "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        state = lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state")  # noqa: E731
        driver.find_element(By.ID, "start").click()
        WebDriverWait(driver, 30).until(lambda d: state(d) in ("listening", "error", "closed"))
        assert state(driver) == "listening", driver.find_element(By.ID, "status").text
        rate = int(driver.find_element(By.TAG_NAME, "body").get_attribute("data-rate"))
        time.sleep(seconds + 1.0)
        driver.find_element(By.ID, "stop").click()
        WebDriverWait(driver, 60).until(lambda d: state(d) in ("done", "error", "closed"))
        assert state(driver) == "done", driver.find_element(By.ID, "status").text
        shown = " ".join(p.get_attribute("data-text") for p in driver.find_elements(By.CSS_SELECTOR, "#finals p"))
        driver.save_screenshot(str(tmp_path / "page.png"))
        # file mode: the browser decodes and resamples the file, then streams it
        driver.find_element(By.ID, "file").send_keys(str(wav))
        WebDriverWait(driver, 60).until(lambda d: state(d) in ("done", "error", "closed") and
                                        d.find_elements(By.CSS_SELECTOR, "#finals p"))
        assert state(driver) == "done", driver.find_element(By.ID, "status").text
        shown_file = " ".join(p.get_attribute("data-text")
                              for p in driver.find_elements(By.CSS_SELECTOR, "#finals p"))
    finally:
        driver.quit()
    assert rate != 16000  # the context runs at the device rate: the worklet resampled
    deadline = time.monotonic() + 20  # the server writes a recording when its connection has closed
    while len(list(record.glob("*.wav"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    received = sorted(record.glob("*.wav"))
    assert len(received) == 2
    for path, text, minimum in ((received[0], shown, 0.9 * seconds), (received[1], shown_file, 0.99 * seconds)):
        audio, received_rate = sf.read(path)
        assert received_rate == 16000 and audio.shape[0] >= minimum * 16000
        result = cli("transcribe", path, "--model", random_model_folder, "--json")
        assert result.returncode == 0, result.stderr.decode()[-2000:]
        expected = json.loads(result.stdout.decode().splitlines()[-1])["text"]
        assert len(expected) > 10, "vacuous: random weights emit many tokens"
        assert text == expected
