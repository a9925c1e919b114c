"""The dashboard in a real headless Chromium (Debian's chromium + chromium-driver, over WebDriver).

Run by scripts/browser-test.sh, which starts PostgreSQL, pgflow-api and one pgflow-agent on a throwaway
database and passes them in PGFLOW_UI_* variables. Every page a test opens is saved as a screenshot in
the folder printed at the start, and every page is checked for JavaScript console errors.
"""
import os
import re
import subprocess
import time

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

BASE = os.environ["PGFLOW_UI_URL"]
DB = os.environ["PGFLOW_UI_DATABASE_URL"]
ADMIN = os.environ["PGFLOW_UI_ADMIN_TOKEN"]
READER = os.environ["PGFLOW_UI_READ_TOKEN"]
AGENT_PID = int(os.environ["PGFLOW_UI_AGENT_PID"])
SHOTS = os.environ["PGFLOW_UI_SCREENSHOTS"]
WAIT = 90  # seconds: outcomes are waited for, never timed
PAGES = ["/", "/flow-runs", "/deployments", "/deployments/demo/quick", "/work-queues", "/concurrency-limits", "/agents", "/flows",
         "/events", "/automations"]
_shot = [0]
console_errors = []


def sql(query, *args):
    """One value from psql (arguments as psql variables, quoted by psql)."""
    cmd = ["psql", DB, "-XAtq", "-v", "ON_ERROR_STOP=1"]
    for i, a in enumerate(args):
        cmd += ["-v", f"a{i}={a}"]
    return subprocess.run(cmd, input=query, capture_output=True, text=True, check=True).stdout.strip()


def make_driver():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("PGFLOW_CHROMIUM", "/usr/bin/chromium")
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100", "--disable-gpu"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(os.environ.get("PGFLOW_CHROMEDRIVER", "/usr/bin/chromedriver")), options=options)
    driver.set_page_load_timeout(60)
    return driver


def check_console(driver, where):
    for entry in driver.get_log("browser"):
        if entry.get("level") == "SEVERE":
            console_errors.append(f"{where}: {entry.get('message')}")


def shot(driver, name):
    _shot[0] += 1
    path = os.path.join(SHOTS, f"{_shot[0]:02d}-{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-') or 'home'}.png")
    driver.save_screenshot(path)


def visit(driver, path, name=None):
    driver.get(BASE + path)
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    check_console(driver, path)
    shot(driver, name or path)


def submit(driver, button, name):
    """Clicks a submit button and waits for the page it leads to."""
    driver.execute_script("window.__pgflowBefore = 1")
    button.click()
    WebDriverWait(driver, 60).until(lambda d: d.execute_script("return window.__pgflowBefore") is None
                                    and d.execute_script("return document.readyState") == "complete")
    check_console(driver, name)
    shot(driver, name)


def login(driver, token):
    driver.get(BASE + "/login")
    driver.find_element(By.ID, "token").send_keys(token)
    submit(driver, driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button[type=submit]"), "logged in")
    assert driver.find_elements(By.CSS_SELECTOR, "form[action='/logout']")


def wait_for(driver, condition, what, timeout=WAIT):
    # live updates replace parts of the page: an element found a moment ago may be gone (stale), so look again
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.3,
                             ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(lambda d: condition(d))
    except Exception:
        shot(driver, "timeout " + what)
        raise AssertionError(f"waited {timeout} s for {what}; page text: {driver.find_element(By.TAG_NAME, 'main').text[:1500]}")


def text_of(driver, by, value):
    """An element's text, looked up again when a live update replaced it between the lookup and the read."""
    for _ in range(50):
        try:
            return driver.find_element(by, value).text
        except StaleElementReferenceException:
            time.sleep(0.1)
    return driver.find_element(by, value).text


def mark_page(driver):
    """Sets a value that a reload would lose."""
    driver.execute_script("window.__pgflowNoReload = 42")


def not_reloaded(driver):
    return driver.execute_script("return window.__pgflowNoReload") == 42


def run_state(driver, run_id):
    cells = driver.find_elements(By.CSS_SELECTOR, f"#runs-table a[href='/flow-runs/{run_id}']")
    if not cells:
        return None
    row = cells[0].find_element(By.XPATH, "./ancestor::tr")
    return row.find_element(By.CSS_SELECTOR, ".state").text


@pytest.fixture(scope="module")
def admin():
    driver = make_driver()
    yield driver
    check_console(driver, "admin session")
    driver.quit()


def test_login_sets_a_strict_http_only_session(admin):
    print(f"\nscreenshots: {SHOTS}")
    admin.get(BASE + "/flow-runs")
    assert admin.current_url.startswith(BASE + "/login"), admin.current_url
    shot(admin, "login")
    admin.find_element(By.ID, "token").send_keys("pgf_not_a_token")
    submit(admin, admin.find_element(By.CSS_SELECTOR, "form[action='/login'] button[type=submit]"), "login refused")
    console_errors.clear()  # the refused login answers 401, which the console reports
    assert "unknown or revoked" in admin.find_element(By.CSS_SELECTOR, ".error").text
    login(admin, ADMIN)
    cookie = admin.get_cookie("pgflow_session")
    assert cookie and cookie["httpOnly"] and cookie.get("sameSite") == "Strict", cookie
    visit(admin, "/", "dashboard")
    assert admin.find_element(By.TAG_NAME, "h1").text == "Dashboard"


def test_dashboard_counts_equal_sql(admin):
    # runs nobody serves (queue "counting" has no agent): one Scheduled, two Cancelled
    ids = [sql("SELECT pgflow.run_deployment('demo/count')") for _ in range(3)]
    for i in ids[:2]:
        sql("SELECT status FROM pgflow.cancel_flow_run(:'a0'::uuid, 'test')", i)
    visit(admin, "/?window=24h", "dashboard counts")
    shown = {e.get_attribute("data-count"): int(e.text) for e in admin.find_elements(By.CSS_SELECTOR, "[data-count]")}
    counted = dict(
        (line.split("|")[0], int(line.split("|")[1]))
        for line in sql("""
            SELECT state_name, count(*) FROM pgflow.flow_runs
             WHERE end_time >= now() - interval '24 hours'
                OR state_type IN ('PENDING', 'RUNNING', 'PAUSED', 'CANCELLING')
                OR id IN (SELECT flow_run_id FROM pgflow.run_queue)
             GROUP BY 1""").splitlines()
    )
    assert shown == counted
    assert shown.get("Cancelled", 0) >= 2 and shown.get("Scheduled", 0) >= 1


def test_quick_run_appears_and_completes_without_reload(admin):
    visit(admin, "/deployments/demo/quick", "deployment demo-quick")
    submit(admin, admin.find_element(By.CSS_SELECTOR, "button[name=action][value=run]"), "quick run")
    notice = admin.find_element(By.CSS_SELECTOR, ".notice").text
    run_id = re.search(r"Created run ([0-9a-f-]{36})", notice).group(1)
    visit(admin, "/flow-runs", "runs after quick run")
    mark_page(admin)
    assert run_state(admin, run_id) is not None, "the new run is listed"
    wait_for(admin, lambda d: run_state(d, run_id) == "Completed", "the run to turn Completed")
    assert not_reloaded(admin), "the page updated itself without a reload"
    shot(admin, "runs quick run completed")
    assert sql("SELECT state_name FROM pgflow.flow_runs WHERE id = :'a0'", run_id) == "Completed"


def sleep_children():
    """PIDs of `sleep 60` processes under our agent."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[:2] != [b"sleep", b"60"]:
                    continue
            p = pid
            for _ in range(20):
                with open(f"/proc/{p}/stat") as f:
                    p = f.read().rsplit(")", 1)[1].split()[1]
                if int(p) == AGENT_PID:
                    found.append(int(pid))
                    break
                if p in ("0", "1"):
                    break
        except OSError:
            continue
    return found


def test_cancel_a_running_sleep(admin):
    run_id = sql("SELECT pgflow.run_deployment('demo/sleep')")
    visit(admin, f"/flow-runs/{run_id}", "sleep run")
    wait_for(admin, lambda d: d.find_element(By.CSS_SELECTOR, "h1 .state").text == "Running", "the sleep run to be Running")
    wait_for(admin, lambda d: sleep_children(), "the sleep 60 process")
    pids = sleep_children()
    shot(admin, "sleep running")
    submit(admin, admin.find_element(By.CSS_SELECTOR, "button[name=action][value=cancel]"), "cancel")
    mark_page(admin)
    wait_for(admin, lambda d: d.find_element(By.CSS_SELECTOR, "h1 .state").text == "Cancelled", "the run to turn Cancelled")
    assert not_reloaded(admin)
    shot(admin, "sleep cancelled")

    def gone(_):
        for pid in pids:
            try:
                os.kill(pid, 0)
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                        return False
            except (ProcessLookupError, FileNotFoundError):
                pass
        return True
    wait_for(admin, gone, "the sleep process to end")


def test_a_running_runs_logs_appear_live(admin):
    run_id = sql("SELECT pgflow.run_deployment('demo/logs')")
    visit(admin, f"/flow-runs/{run_id}", "logs run")
    mark_page(admin)
    wait_for(admin, lambda d: "line-3" in d.find_element(By.ID, "log-lines").text, "log line-3 to appear")
    assert text_of(admin, By.CSS_SELECTOR, "h1 .state") in ("Running", "Completed")
    assert not_reloaded(admin)
    shot(admin, "logs live")
    wait_for(admin, lambda d: d.find_element(By.CSS_SELECTOR, "h1 .state").text == "Completed", "the logs run to complete")
    assert "line-6" in text_of(admin, By.ID, "log-lines")


def queue_row(driver, name):
    return driver.find_element(By.ID, f"q-{name}").find_element(By.XPATH, "./ancestor::tr")


def test_pause_and_resume_a_work_queue(admin):
    visit(admin, "/work-queues", "work queues")
    assert "pgflow-agent --queue counting" in queue_row(admin, "counting").text
    submit(admin, queue_row(admin, "counting").find_element(By.CSS_SELECTOR, "button[value=pause]"), "pause queue")
    assert "Paused" in queue_row(admin, "counting").find_element(By.CSS_SELECTOR, ".state").text
    assert sql("SELECT paused FROM pgflow.work_queues WHERE name = 'counting'") == "t"
    shot(admin, "queue paused")
    submit(admin, queue_row(admin, "counting").find_element(By.CSS_SELECTOR, "button[value=resume]"), "resume queue")
    assert "Active" in queue_row(admin, "counting").find_element(By.CSS_SELECTOR, ".state").text
    assert sql("SELECT paused FROM pgflow.work_queues WHERE name = 'counting'") == "f"
    shot(admin, "queue resumed")


def test_events_are_listed_and_an_automation_is_paused_and_resumed(admin):
    sql("SELECT pgflow.emit_event('acme.file.arrived', '{\"id\": \"s3://raw/browser.csv\"}', '{\"rows\": 42}')")
    sql("""SELECT pgflow.create_automation('on-file', '{"match": "acme.file.*"}', '[{"type": "run-deployment", "deployment": "demo/count"}]')""")
    visit(admin, "/events?event=acme.file.*", "events filtered")
    text = admin.find_element(By.TAG_NAME, "main").text
    assert "acme.file.arrived" in text and "s3://raw/browser.csv" in text and '"rows":42' in text.replace(" ", ""), text[:800]
    visit(admin, "/automations", "automations")
    row = admin.find_element(By.ID, "a-on-file").find_element(By.XPATH, "./ancestor::tr")
    submit(admin, row.find_element(By.CSS_SELECTOR, "button[value=pause]"), "automation paused")
    assert sql("SELECT paused FROM pgflow.automations WHERE name = 'on-file'") == "t"
    row = admin.find_element(By.ID, "a-on-file").find_element(By.XPATH, "./ancestor::tr")
    assert "Paused" in row.find_element(By.CSS_SELECTOR, ".state").text
    submit(admin, row.find_element(By.CSS_SELECTOR, "button[value=resume]"), "automation resumed")
    assert sql("SELECT paused FROM pgflow.automations WHERE name = 'on-file'") == "f"


def test_batch_cancel_every_run_matching_a_filter(admin):
    for _ in range(3):
        sql("SELECT pgflow.run_deployment('demo/count')")
    visit(admin, "/flow-runs?deployment=demo/count&state=Scheduled", "runs filtered")
    submit(admin, admin.find_element(By.CSS_SELECTOR, "button[value=cancel-all]"), "cancel all matching")
    heading = admin.find_element(By.TAG_NAME, "h1").text
    expected = sql("SELECT count(*) FROM pgflow.flow_runs r JOIN pgflow.deployments d ON d.id = r.deployment_id WHERE d.name = 'count' AND r.state_name = 'Scheduled'")
    assert heading == f"Cancel {expected} runs?", heading
    shot(admin, "batch confirm")
    submit(admin, admin.find_element(By.CSS_SELECTOR, "button[value=cancel-all]"), "confirmed")
    assert f"Cancelled {expected} runs" in admin.find_element(By.CSS_SELECTOR, ".notice").text
    assert sql("SELECT count(*) FROM pgflow.flow_runs r JOIN pgflow.deployments d ON d.id = r.deployment_id WHERE d.name = 'count' AND r.state_name = 'Scheduled'") == "0"


def test_every_page_renders_without_console_errors(admin):
    run_id = sql("SELECT id FROM pgflow.flow_runs ORDER BY created_at LIMIT 1")
    for path in PAGES + [f"/flow-runs/{run_id}"]:
        visit(admin, path)
        assert admin.find_elements(By.TAG_NAME, "h1"), path
        assert "<script>" not in admin.find_element(By.TAG_NAME, "main").get_attribute("innerHTML").replace("&lt;script&gt;", "")
    assert console_errors == []


def api_connections():
    """Established TCP connections to the API's port from this machine's clients (from /proc/net/tcp)."""
    port = int(BASE.rsplit(":", 1)[1])
    count = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[2].split(":")[1], 16) == port:
                count += 1
    return count


def test_leaving_a_live_page_closes_its_stream(admin):
    # Over HTTP/1.1 a browser opens at most 6 connections to a host; when pages kept their Server-Sent
    # Events streams after being left, the seventh page waited about a minute for a free connection.
    # Every page is counted right after it loaded: a left page's stream still open shows as one more.
    counts = []
    for path in PAGES + PAGES:
        visit(admin, path, "stream check " + path)
        counts.append(api_connections())
    assert max(counts) < 6, f"connections to the API after each page: {counts}"


def test_a_read_only_token_sees_no_buttons_and_is_refused():
    driver = make_driver()
    try:
        login(driver, READER)
        run_id = sql("SELECT id FROM pgflow.flow_runs ORDER BY created_at LIMIT 1")
        for path in PAGES + [f"/flow-runs/{run_id}"]:
            visit(driver, path, "read only " + path)
            assert driver.find_elements(By.CSS_SELECTOR, "button[name=action], input[name=id]") == [], path
        check_console(driver, "read only")
        assert console_errors == []
        # a POST with the session's valid CSRF token is refused for the token's scope (403)
        csrf = driver.find_element(By.CSS_SELECTOR, "form[action='/logout'] input[name=_csrf]").get_attribute("value")
        status = driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            fetch('/work-queues', {method: 'POST', body: new URLSearchParams({_csrf: arguments[0], name: 'counting', action: 'pause', next: '/work-queues'})})
              .then(r => done(r.status), e => done(String(e)));""", csrf)
        assert status == 403, status
        assert sql("SELECT paused FROM pgflow.work_queues WHERE name = 'counting'") == "f"
    finally:
        driver.quit()


def test_a_post_without_the_csrf_token_is_refused(admin):
    visit(admin, "/work-queues", "csrf check")
    status = admin.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/work-queues', {method: 'POST', body: new URLSearchParams({name: 'counting', action: 'pause'})})
          .then(r => done(r.status), e => done(String(e)));""")
    assert status == 403, status
    assert sql("SELECT paused FROM pgflow.work_queues WHERE name = 'counting'") == "f"
