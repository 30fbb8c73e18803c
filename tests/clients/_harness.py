"""What every client script in tests/clients shares: its output contract and its deadline.

Contract with the Rust integration tests that run these scripts as subprocesses:
- stdout carries exactly one JSON line. On success it is the script's result; on failure it is
  {"error": "<message>", ...partial results}. Nothing else is ever printed on stdout.
- stderr carries "error: <message>" on failure, plus whatever the client library logs.
- Exit status: 0 success, 1 check or client failure, 3 the hard --timeout-s deadline passed;
  2 bad arguments (argparse prints usage on stderr, and stdout stays empty).
- The process always exits by --timeout-s: a watchdog thread calls os._exit, so neither a
  blocked client call nor a non-daemon client thread can keep it alive.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time

EXIT_FAILURE = 1
EXIT_TIMEOUT = 3

# Share of --timeout-s that the script's own waits may use, so that a slow step fails with its
# own message before the watchdog fires with a generic one.
_SOFT_DEADLINE_SHARE = 0.85

_output_lock = threading.Lock()
_output_done = False


class CheckFailed(Exception):
    """A result did not match what the script produced; the message says what differed."""


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--bootstrap", required=True, help="host:port of the broker, e.g. 127.0.0.1:9092")
    p.add_argument(
        "--timeout-s",
        type=float,
        default=60.0,
        help="hard limit for the whole run; the process exits with status 3 when it passes (default 60)",
    )
    p.add_argument("--verbose", action="store_true", help="log client library debug output to stderr")
    return p


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


class Deadline:
    """The soft deadline the script's own waits use; the watchdog enforces the hard one."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self._start = time.monotonic()
        self._end = self._start + timeout_s * _SOFT_DEADLINE_SHARE

    def remaining_s(self) -> float:
        return max(0.0, self._end - time.monotonic())

    def remaining_ms(self) -> int:
        return int(self.remaining_s() * 1000)

    def expired(self) -> bool:
        return time.monotonic() >= self._end

    def elapsed_s(self) -> float:
        return time.monotonic() - self._start


def _emit(code: int, result: dict, message: str | None) -> None:
    global _output_done
    with _output_lock:
        if _output_done:
            return
        _output_done = True
        if message is not None:
            print(f"error: {message}", file=sys.stderr)
        sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
        sys.stdout.flush()
        sys.stderr.flush()
        # os._exit and not sys.exit: client libraries may hold non-daemon threads or block in
        # their close(), which must not keep a finished test process alive.
        os._exit(code)


def succeed(result: dict) -> None:
    _emit(0, result, None)


def fail(message: str, **partial) -> None:
    _emit(EXIT_FAILURE, {"error": message, **partial}, message)


def start_watchdog(timeout_s: float, what: str) -> None:
    def fire() -> None:
        _emit(EXIT_TIMEOUT, {"error": f"timed out after {timeout_s:g} s: {what}"}, f"timed out after {timeout_s:g} s: {what}")

    timer = threading.Timer(timeout_s, fire)
    timer.daemon = True
    timer.start()


def describe(exc: BaseException) -> str:
    """'ErrorClass: message', without repeating the class when the message already starts
    with it (kafka-python's errors do)."""
    name = type(exc).__name__
    text = str(exc)
    return text if text.startswith(name) else f"{name}: {text}" if text else name


class _RepeatFilter(logging.Filter):
    """Lets each distinct message through once, up to a cap: a client retrying a refused
    connection every 50 ms would otherwise bury the useful lines of stderr."""

    def __init__(self, cap: int = 100):
        super().__init__()
        self._seen: set[str] = set()
        self._cap = cap

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self._seen or len(self._seen) >= self._cap:
            return False
        self._seen.add(message)
        return True


def client_logger(name: str, verbose: bool) -> logging.Logger:
    """A stderr logger for client libraries: every level with --verbose, else WARNING and up
    with repeats dropped."""
    logger = logging.getLogger(name)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    if not verbose:
        handler.addFilter(_RepeatFilter())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logger.propagate = False
    return logger


def close_with_timeout(close, timeout_s: float, name: str) -> None:
    """Calls close() on a helper thread and gives up after timeout_s (some closes can block on
    a broker that lacks an API); a failed close is reported on stderr but fails nothing."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            close()
        except BaseException as exc:  # noqa: BLE001 - reported below, never raised
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"close-{name}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        print(f"warning: {name}.close() did not return within {timeout_s:g} s", file=sys.stderr)
    elif errors:
        print(f"warning: {name}.close() failed: {errors[0]!r}", file=sys.stderr)


def expected_record(i: int) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """The i-th record the roundtrip scripts produce: key, value, headers."""
    return f"k{i}".encode(), f"v{i}".encode(), [("h", str(i).encode())]


class RoundtripChecker:
    """Checks consumed records against the produced ones, matched by (partition, offset).

    Records at offsets this run did not produce (an earlier run on the same topic) are counted
    but not checked; every produced offset must come back with its key, value and headers, and
    offsets must increase within each partition.
    """

    def __init__(self, produced: dict[tuple[int, int], int]):
        # (partition, offset) -> index i of the produced record
        self.produced = produced
        self.seen: set[tuple[int, int]] = set()
        self.other_records = 0
        self._last_offset: dict[int, int] = {}

    def add(self, partition: int, offset: int, key, value, headers) -> None:
        last = self._last_offset.get(partition)
        if last is not None and offset <= last:
            raise CheckFailed(f"partition {partition}: offset {offset} consumed after offset {last}")
        self._last_offset[partition] = offset
        i = self.produced.get((partition, offset))
        if i is None:
            self.other_records += 1
            return
        if (partition, offset) in self.seen:
            raise CheckFailed(f"partition {partition} offset {offset} consumed twice")
        want_key, want_value, want_headers = expected_record(i)
        got_headers = [(k, bytes(v) if v is not None else None) for k, v in (headers or [])]
        if key != want_key or value != want_value or got_headers != want_headers:
            raise CheckFailed(
                f"partition {partition} offset {offset}: expected key={want_key!r} value={want_value!r} "
                f"headers={want_headers!r}, got key={key!r} value={value!r} headers={got_headers!r}"
            )
        self.seen.add((partition, offset))

    def done(self) -> bool:
        return len(self.seen) == len(self.produced)

    def missing_summary(self, limit: int = 5) -> str:
        missing = sorted(set(self.produced) - self.seen)
        shown = ", ".join(f"p{p}@{o}" for p, o in missing[:limit])
        more = f" and {len(missing) - limit} more" if len(missing) > limit else ""
        return f"{len(missing)} of {len(self.produced)} produced records not consumed ({shown}{more})"


def offset_ranges(produced: dict[tuple[int, int], int]) -> dict[str, list[int]]:
    """{"partition": [first_offset, last_offset]} of the produced records, for the JSON result."""
    ranges: dict[str, list[int]] = {}
    for partition, offset in produced:
        lo_hi = ranges.setdefault(str(partition), [offset, offset])
        lo_hi[0] = min(lo_hi[0], offset)
        lo_hi[1] = max(lo_hi[1], offset)
    return dict(sorted(ranges.items(), key=lambda kv: int(kv[0])))
