"""The gateway's pages in a real headless Chromium over WebDriver (tests/web.rs).

Usage: python web_browser.py BASE_URL API_KEY MINERS SCREENSHOT_DIR. Asserts as it goes;
prints `ALL OK` at the end. Uses Debian's /usr/bin/chromium and /usr/bin/chromedriver.
"""

import json
import re
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

base, key, miners, shots = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
question = "Tell me a happy story about a rabbit and a turtle"
# The simulated miners' answer (simnet/src/miner/config.rs `default_answer`).
answer_re = re.compile(r'Miner (\d+) answers: you asked "(.*)"\. This is a simulated reply, streamed in chunks\.')

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
            "--window-size=1280,1100", "--lang=en-US"]:
    options.add_argument(arg)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
js = driver.execute_script


def wait_for(what, check, within=20.0, every=0.05):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def ask(prompt):
    """Types `prompt`, sends it with Ctrl+Enter, and records #answer's length until the
    answer is complete; returns (text, distinct lengths seen)."""
    box = driver.find_element(By.NAME, "prompt")
    box.clear()
    box.send_keys(prompt)
    box.send_keys(Keys.CONTROL, Keys.ENTER)
    lengths = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        n, busy = js("return [document.getElementById('answer').textContent.length,"
                     " document.getElementById('answer').getAttribute('aria-busy')]")
        if not lengths or lengths[-1] != n:
            lengths.append(n)
        if busy == "false" and n > 0 and "total" in driver.find_element(By.ID, "meta").text:
            break
        time.sleep(0.02)
    error = driver.find_element(By.ID, "error")
    assert not error.is_displayed(), f"error shown: {error.text}"
    return driver.find_element(By.ID, "answer").text, sorted(set(lengths) - {0})


try:
    # ---- The playground: the key, a prompt, the answer streaming into #answer.
    driver.get(f"{base}/")
    assert "playground" in driver.title.lower(), driver.title
    assert driver.find_element(By.CSS_SELECTOR, "form textarea[name=prompt]")
    # Nothing the form would submit without the script can put the key into a URL: POST, and
    # the key field has no name (so it is never a form field at all).
    assert js("return document.getElementById('ask').method") == "post"
    assert not js("return document.getElementById('api-key').hasAttribute('name')")
    # Sampling offers the server's default, `reliable`, and starts on it.
    sampling = js("return [[...document.querySelectorAll('#sampling option')].map(o => o.value),"
                  " document.getElementById('sampling').value]")
    assert "reliable" in sampling[0] and sampling[1] == "reliable", sampling
    # Count the page's /chat requests and keep their bodies.
    js("window.chatBodies = []; const real = window.fetch;"
       " window.fetch = function (url, init) {"
       "   if (String(url).endsWith('/chat')) window.chatBodies.push(JSON.parse(init.body));"
       "   return real.apply(this, arguments); };")
    driver.find_element(By.ID, "api-key").send_keys(key)

    # A wrong key first: a message a person understands, no answer.
    driver.find_element(By.ID, "api-key").clear()
    driver.find_element(By.ID, "api-key").send_keys("not-the-key")
    driver.find_element(By.NAME, "prompt").send_keys("hello")
    driver.find_element(By.ID, "send").click()
    error = wait_for("the 401 message", lambda: driver.find_element(By.ID, "error").text)
    assert "API key was refused" in error, error
    assert driver.find_element(By.ID, "answer").text == ""
    driver.find_element(By.ID, "api-key").clear()
    driver.find_element(By.ID, "api-key").send_keys(key)

    text, lengths = ask(question)
    m = answer_re.fullmatch(text)
    assert m and m.group(2) == question, text
    assert len(lengths) >= 3, f"#answer grew in {len(lengths)} steps only: {lengths}"
    assert lengths[-1] == len(text), (lengths, len(text))
    print(f"#answer grew through lengths {lengths}")
    meta = driver.find_element(By.ID, "meta").text
    assert f"miner uid {m.group(1)}" in meta, meta
    assert "first chunk after" in meta and "total" in meta, meta
    link = driver.find_element(By.ID, "request-link")
    assert re.fullmatch(r"[0-9a-f-]{36}", link.text), link.text
    # The link leads to the request's fan-out: the miner that answered, selected, first.
    fan_out = wait_for("the request's audit row", lambda: js(
        "return fetch(arguments[0]).then(r => r.ok ? r.json() : null)", link.get_attribute("href")))
    assert fan_out["request_id"] == link.text and fan_out["status"] == "answered", fan_out
    assert fan_out["miners"][0]["selected"] and fan_out["miners"][0]["uid"] == int(m.group(1)), fan_out
    assert "messages" not in fan_out and "completion" not in fan_out, fan_out

    # The conversation carries over: the next request sends both earlier turns.
    turns = driver.find_elements(By.CSS_SELECTOR, "#conversation .turn")
    assert len(turns) == 2, len(turns)
    text2, _ = ask("And then?")
    assert answer_re.fullmatch(text2) and "And then?" in text2, text2
    assert len(driver.find_elements(By.CSS_SELECTOR, "#conversation .turn")) == 4
    bodies = js("return window.chatBodies")
    assert len(bodies) == 3, bodies  # the wrong key's, then one per answer
    assert all(b["sampling_mode"] == "reliable" for b in bodies), bodies

    # Sending again while an answer streams does nothing: Ctrl+Enter twice, Send, a script's
    # requestSubmit — one request, one answer in #answer, one new pair of turns.
    box = driver.find_element(By.NAME, "prompt")
    box.send_keys("Only once, please")
    box.send_keys(Keys.CONTROL, Keys.ENTER)
    box.send_keys(Keys.CONTROL, Keys.ENTER)
    js("document.getElementById('send').click(); document.getElementById('ask').requestSubmit();")
    wait_for("some of the answer", lambda: driver.find_element(By.ID, "answer").text)
    box.send_keys(Keys.CONTROL, Keys.ENTER)  # mid-stream too
    wait_for("the answer to end", lambda: driver.find_element(By.ID, "send").is_enabled()
             and "total" in driver.find_element(By.ID, "meta").text)
    sent = js("return window.chatBodies.length") - len(bodies)
    assert sent == 1, f"{sent} requests for one prompt"
    once = driver.find_element(By.ID, "answer").text
    assert (m := answer_re.fullmatch(once)) and m.group(2) == "Only once, please", once
    assert len(driver.find_elements(By.CSS_SELECTOR, "#conversation .turn")) == 6
    driver.save_screenshot(f"{shots}/playground.png")

    # An answer that runs past its timeout: a StreamError, shown as a sentence; not a turn.
    driver.find_element(By.CSS_SELECTOR, "details summary").click()
    timeout = driver.find_element(By.ID, "timeout")
    timeout.clear()
    timeout.send_keys("0.5")
    box = driver.find_element(By.NAME, "prompt")
    box.send_keys("A question the miners answer too slowly")
    box.send_keys(Keys.CONTROL, Keys.ENTER)
    stopped = wait_for("the StreamError message", lambda: driver.find_element(By.ID, "error").text)
    assert stopped.startswith("The answer stopped:"), stopped
    wait_for("the request to end", lambda: driver.find_element(By.ID, "send").is_enabled())
    assert len(driver.find_elements(By.CSS_SELECTOR, "#conversation .turn")) == 6
    print(f"past its timeout: {stopped!r}")

    # The form submitted the way it would be without the script (form.submit() fires no submit
    # event): the browser leaves the page, and neither the key nor the prompt is in a URL.
    js("document.getElementById('api-key').value = arguments[0];"
       " document.getElementById('prompt').value = 'no script';"
       " document.getElementById('ask').submit();", key)

    def left_the_form():
        try:
            return "?" in driver.current_url or not js("return document.getElementById('ask')")
        except Exception:  # mid-navigation
            return False
    wait_for("the script-less submission", left_the_form)
    assert key not in driver.current_url and "?" not in driver.current_url, driver.current_url

    # ---- The status page: one row per serving miner, the counts, the charts.
    driver.get(f"{base}/status")
    rows = wait_for(f"{miners} table rows",
                    lambda: (r := driver.find_elements(By.CSS_SELECTOR, "#miners tbody tr"))
                    and len(r) == miners and r)
    assert driver.find_element(By.ID, "count-serving").text == str(miners)
    assert driver.find_element(By.ID, "netuid").text == "1"
    uids = [int(r.find_element(By.CSS_SELECTOR, "td").text) for r in rows]
    assert uids == sorted(uids), uids
    bars = {c: len(driver.find_elements(By.CSS_SELECTOR, f"#chart-{c} rect.bar"))
            for c in ["requests", "ttfb", "success"]}
    assert bars["requests"] >= 61, bars  # one per minute of the hour (errors drawn over them)
    assert bars["ttfb"] == 10, bars  # the histogram's buckets
    wait_for("success bars", lambda: driver.find_elements(By.CSS_SELECTOR, "#chart-success rect.bar"),
             within=15)
    asked = wait_for("audited replies in the table", lambda: [
        r for r in driver.find_elements(By.CSS_SELECTOR, "#miners tbody tr")
        if r.find_elements(By.CSS_SELECTOR, "td")[6].text not in ("0", "")] or
        (driver.find_element(By.ID, "refresh").click() and False), within=20, every=0.5)
    assert "%" in asked[0].find_elements(By.CSS_SELECTOR, "td")[7].text

    # Sorting with the keyboard: focus the uid heading's button, Enter → descending.
    uid_button = driver.find_element(By.CSS_SELECTOR, "th[data-key=uid] button")
    uid_button.send_keys(Keys.ENTER)
    first = driver.find_element(By.CSS_SELECTOR, "#miners tbody tr td").text
    assert int(first) == max(uids), (first, uids)
    assert driver.find_element(By.CSS_SELECTOR, "th[data-key=uid]").get_attribute("aria-sort") == "descending"
    uid_button.send_keys(Keys.ENTER)
    driver.save_screenshot(f"{shots}/status.png")

    # The key is remembered for the next visit.
    assert js("return localStorage.getItem('sn1.apiKey')") == key

    # ---- Phone width: nothing wider than the screen (the table scrolls in its own box).
    driver.set_window_size(390, 1100)
    for path in ["/", "/status"]:
        driver.get(f"{base}{path}")
        time.sleep(0.5)
        overflow = js("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow}px wider than a phone"
    wait_for("rows at phone width", lambda: driver.find_elements(By.CSS_SELECTOR, "#miners tbody tr"))
    driver.save_screenshot(f"{shots}/status-phone.png")
    driver.set_window_size(1280, 1100)

    # ---- 1,000 rows: render and sort quickly.
    big = js("return fetch('/api/status').then(r => r.json())")
    template = big["miners"][0]
    big["miners"] = [dict(template, uid=i, hotkey=f"5Fake{i:06d}Hotkey",
                          success_rate=(i % 100) / 100, replies=i % 37) for i in range(1000)]
    took = js("const t = performance.now(); window.sn1Status.render(arguments[0]);"
              " return performance.now() - t;", big)
    assert len(driver.find_elements(By.CSS_SELECTOR, "#miners tbody tr")) == 1000
    sort_took = js("const t = performance.now();"
                   " document.querySelector('th[data-key=success_rate] button').click();"
                   " return performance.now() - t;")
    top = driver.find_element(By.CSS_SELECTOR, "#miners tbody tr td").text
    assert int(top) % 100 == 0, top  # success 0% first, ascending
    print(f"1,000 rows: render {took:.0f} ms, sort {sort_took:.0f} ms")
    assert took < 1500 and sort_took < 1000, (took, sort_took)
    print(json.dumps({"lengths": lengths, "bars": bars}))
    print("ALL OK")
finally:
    driver.quit()
