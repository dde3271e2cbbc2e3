"""Soak (make soak, not make test): downloads through front that outlast every
timer of front and of the grain, read by clients slower than the app, while
the CPUs are busy. Every byte must arrive, in order, and front must stay
small. Minutes of wall time on purpose; no timing threshold.

    make soak                       # about 8 minutes
    SOAK_SLOW_SECONDS=900 make soak # a longer slow reader
"""
import concurrent.futures
import multiprocessing
import os
import random
import socket
import time

import pytest

from conftest import Packager
from grains import front_pid, grain_test_spk, rss_kib, setup_grain

SLOW_SECONDS = int(os.environ.get("SOAK_SLOW_SECONDS", 390))  # front's longest timer is 300 s
PATTERN = bytes((i * 31) % 251 for i in range(251))  # grain-test's download bytes


@pytest.fixture(scope="module")
def app_spk(tmp_path_factory):
    return grain_test_spk(Packager(tmp_path_factory.mktemp("grain-packages")))


@pytest.fixture
def grain(start_granaryd, app_spk):
    # The grain's own idle stop at its default (5 minutes): a download counts as use.
    return setup_grain(start_granaryd, app_spk)[2]


def download(grain, size, pace, rcvbuf=64 * 1024):
    """GET /download?bytes=size on a raw socket with a small receive buffer,
    read as pace(bytes so far) says (a pause in seconds before each read).
    Every byte is compared with the pattern. (bytes, seconds)."""
    started = time.monotonic()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(600)
    s.connect(("127.0.0.1", grain.daemon.port))
    s.sendall(f"GET /download?bytes={size} HTTP/1.1\r\nHost: {grain.host}\r\n"
              f"Cookie: {grain.http.headers['Cookie']}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        more = s.recv(65536)
        assert more, data
        data += more
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200"), head
    length = int([line.split(b":")[1] for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:")][0])
    assert length == size, head
    got = 0
    while True:
        if body:
            offset = got % len(PATTERN)
            want = (PATTERN * (len(body) // len(PATTERN) + 2))[offset:offset + len(body)]
            assert body == want, f"bytes differ after {got}"
            got += len(body)
        if got >= size:
            break
        pause = pace(got)
        if pause:
            time.sleep(pause)
        body = s.recv(16384)
        if not body:
            break
    s.close()
    return got, time.monotonic() - started


def burn(stop_at):
    while time.monotonic() < stop_at:
        pass


def test_a_slow_reader_outlasting_every_timer_gets_every_byte(grain):
    size = 96 << 20
    rate = size / SLOW_SECONDS  # bytes per second
    start = time.monotonic()
    front = front_pid(grain.daemon)
    before = rss_kib(front)

    def pace(got):
        ahead = got / rate - (time.monotonic() - start)
        return max(0.0, min(ahead, 1.0))

    got, seconds = download(grain, size, pace)
    print(f"# slow reader: {got} of {size} bytes in {seconds:.0f} s")
    assert got == size
    assert seconds >= 0.95 * SLOW_SECONDS  # it was as slow as asked (390 s: past every timer)
    grown = rss_kib(front) - before
    print(f"# front grew by {grown} KiB")
    assert grown < 8 * 1024


def test_irregular_readers_under_load_get_every_byte(grain):
    """Readers that stop for up to 3 s at a time and then read fast, 4 at
    once, with both CPUs kept busy by other processes."""
    size, readers = 256 << 20, 4
    stop_at = time.monotonic() + 600
    burners = [multiprocessing.Process(target=burn, args=(stop_at,)) for _ in range(2)]
    for b in burners:
        b.start()
    try:
        def reader(seed):
            rng = random.Random(seed)
            marks = sorted(rng.randrange(size) for _ in range(40))

            def pace(got):
                if marks and got >= marks[0]:
                    marks.pop(0)
                    return rng.uniform(0.1, 3.0)
                return 0
            return download(grain, size, pace, rcvbuf=rng.choice((16384, 65536, 1 << 20)))

        with concurrent.futures.ThreadPoolExecutor(readers) as pool:
            results = list(pool.map(reader, range(readers)))
    finally:
        for b in burners:
            b.terminate()
            b.join()
    for i, (got, seconds) in enumerate(results):
        print(f"# reader {i}: {got} of {size} bytes in {seconds:.0f} s")
    assert all(got == size for got, _ in results)
