"""acquire() releases the GIL while it waits: another Python thread runs meanwhile."""

import sys
import threading
import time

import tollgate
from conftest import exhaust, warm


def test_other_threads_run_while_one_waits_in_acquire(make_limiter, key):
    lim = make_limiter(rate=0.001, burst=1)  # once spent, the next token is ~17 minutes away
    warm(lim, key)
    exhaust(lim, key)

    inside = threading.Event()
    result: list[tollgate.Decision] = []

    def profile(frame, event, arg):  # tells us when the waiting thread is inside the C call
        if event == "c_call" and getattr(arg, "__name__", "") == "acquire":
            inside.set()

    def waiter() -> None:
        sys.setprofile(profile)
        try:
            result.append(lim.acquire(key, 1, timeout=60.0))
        finally:
            sys.setprofile(None)

    t = threading.Thread(target=waiter)
    t.start()
    assert inside.wait(60)
    counter = 0
    for _ in range(10_000):  # pure Python: impossible while the waiter held the GIL
        counter += 1
    assert counter == 10_000
    assert t.is_alive() and not result, "acquire returned before it could have been decided"
    lim.close()  # the only way the wait ends early: it completes with reason "shutdown"
    t.join(60)
    assert not t.is_alive()
    assert result[0].reason == "shutdown" and not result[0].allowed


def test_acquire_timeout(make_limiter, key):
    lim = make_limiter(rate=0.001, burst=1)
    warm(lim, key)
    exhaust(lim, key)
    d = lim.acquire(key, 1, timeout=0.05)
    assert not d.allowed and d.reason == "timeout"
    assert lim.acquire(key, 1, timeout=0).reason == "timeout"


def test_ctrl_c_interrupts_a_waiting_acquire(redis_url, key):
    """SIGINT during acquire cancels the native wait and raises KeyboardInterrupt."""
    import signal
    import subprocess
    import textwrap

    # The child raises KeyboardInterrupt on SIGINT whatever it inherited: Python keeps SIGINT
    # ignored when it starts with it ignored, as every job started with `&` by a
    # non-interactive shell does (a CI run in the background hung here for the full 120 s).
    script = textwrap.dedent(f"""
        import signal, sys, tollgate
        signal.signal(signal.SIGINT, signal.default_int_handler)
        lim = tollgate.Limiter({{"store": {{"type": "redis", "shards": ["{redis_url}"]}},
            "policies": [{{"match": "tenant:*", "type": "token_bucket", "rate": 0.001, "burst": 1}}]}})
        assert lim.acquire("{key}", 1, timeout=20).allowed
        def profile(frame, event, arg):  # says "waiting" as the C call starts
            if event == "c_call" and getattr(arg, "__name__", "") == "acquire":
                sys.setprofile(None)
                print("waiting", flush=True)
        try:
            sys.setprofile(profile)
            lim.acquire("{key}", 1, timeout=600)
        except KeyboardInterrupt:
            print("interrupted", lim.stats()["denied"]["timeout"], flush=True)
            sys.exit(0)
        sys.exit(1)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "waiting"
        time.sleep(0.2)  # most likely inside the wait by now; the test holds either way
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert out.strip() == "interrupted 0"
