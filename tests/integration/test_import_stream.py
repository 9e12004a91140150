"""POST /api/v1/suppressions/import streamed (issue 22, point 3), with the real
binary on SQLite: a 200,003-row CSV (7 MB) with Content-Length and a chunked
body are imported whole; the key is checked before the body is read; a body
over http.max_import_bytes is 413 and keeps only the complete rows before the
limit; a client that stalls mid-row times out and its partial row is never
applied. See docs/suppression.md ("The import endpoint")."""

import http.client
import json
import os
import socket
import tempfile
import time
import unittest

from relay import Relay, wait_until

API_KEY = "import-stream-test-key-0123456789abcdef"
AUTH = {"Authorization": "Bearer " + API_KEY}
IMPORT = "/api/v1/suppressions/import"


def csv_rows(count, start=0):
    """The CSV body of `count` opt-outs, one row per line after the header."""
    lines = ["email,reason\n"]
    lines += [f"user{i}@d{i % 997}.example,unsubscribe\n" for i in range(start, start + count)]
    return "".join(lines).encode()


class ImportStreamBase:
    settings = {}

    def setUp(self):
        keys = tempfile.mkdtemp(prefix="unsubrelay-import-")
        api_keys = os.path.join(keys, "api-keys")
        with open(api_keys, "w") as f:
            f.write(API_KEY + "\n")
        self.relay = Relay(extra={
            "http": {"api_keys_file": api_keys, "requests_per_minute": 100000, **self.settings},
            "unsubscribe": {"base_url": "https://u.example"},
        }).start()

    def tearDown(self):
        self.assertEqual(self.relay.stop(), 0, self.relay.read_log()[-3000:])

    def connection(self, timeout=600):
        return http.client.HTTPConnection("127.0.0.1", self.relay.http_port, timeout=timeout)

    def suppressed(self, address):
        code, _, body = self.relay.http("GET", "/api/v1/suppressions?address=" + address, headers=AUTH)
        self.assertEqual(code, 200, body)
        return len(json.loads(body)["suppressions"]) > 0

    def all_suppressed(self):
        out, cursor = [], ""
        while True:
            code, _, body = self.relay.http("GET", f"/api/v1/suppressions?limit=1000&cursor={cursor}", headers=AUTH)
            self.assertEqual(code, 200, body)
            page = json.loads(body)
            out += [e["address"] for e in page["suppressions"]]
            cursor = page["next_cursor"]
            if not cursor:
                return sorted(out)

    def raw(self, head, body=b""):
        """A socket that has sent `head` (request line and headers) and `body`."""
        s = socket.create_connection(("127.0.0.1", self.relay.http_port), timeout=20)
        s.sendall(head.encode() + body)
        return s

    def read_answer(self, s):
        data = b""
        while True:
            try:
                piece = s.recv(65536)
            except ConnectionResetError:
                break
            if not piece:
                break
            data += piece
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep and b"content-length:" in head.lower():
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(rest) >= length:
                    break
        return data


class ImportStreamTest(ImportStreamBase, unittest.TestCase):
    settings = {"timeout_seconds": 3}

    def test_a_200003_row_csv_with_content_length_is_imported_whole(self):
        body = csv_rows(200003)
        self.assertGreater(len(body), 7_000_000)
        c = self.connection()
        started = time.monotonic()
        c.request("POST", IMPORT, body=body, headers={**AUTH, "Content-Type": "text/csv"})
        r = c.getresponse()
        report = json.loads(r.read())
        seconds = time.monotonic() - started
        c.close()
        self.assertEqual(r.status, 200, report)
        self.assertEqual((report["format"], report["rows"], report["added"], report["bad_rows"]),
                         ("csv", 200003, 200003, 0), report)
        print(f"\n200,003 rows through the API in {seconds:.1f} s ({200003 / seconds:,.0f} rows/s, this build)")
        for i in (0, 1, 100000, 200002):
            self.assertTrue(self.suppressed(f"user{i}@d{i % 997}.example"), i)
        self.assertFalse(self.suppressed("user200003@d619.example"))

    def test_a_chunked_body_is_imported_with_its_errors_by_line_capped(self):
        good = csv_rows(20011).decode().splitlines(keepends=True)
        lines = good[:1] + [line for i, row in enumerate(good[1:]) for line in
                            ([row, f"bad-row-{i}\n"] if i < 1500 else [row])]
        body = "".join(lines).encode()

        def pieces():  # uneven pieces, so records straddle them
            for at in range(0, len(body), 4093):
                yield body[at:at + 4093]

        c = self.connection()
        c.request("POST", IMPORT, body=pieces(), encode_chunked=True,
                  headers={**AUTH, "Content-Type": "text/csv", "Transfer-Encoding": "chunked"})
        r = c.getresponse()
        report = json.loads(r.read())
        self.assertEqual(r.status, 200, report)
        self.assertEqual((report["rows"], report["added"], report["bad_rows"]), (20011, 20011, 1500), report)
        self.assertEqual(len(report["errors"]), 1000)  # the answer stays bounded: counts, the first 1000 errors
        self.assertEqual([e["line"] for e in report["errors"][:3]], [3, 5, 7])
        # The connection stays usable: the next request on it is answered.
        c.request("GET", "/api/v1/suppressions?address=user20010@d70.example", headers=AUTH)
        r = c.getresponse()
        self.assertEqual((r.status, len(json.loads(r.read())["suppressions"])), (200, 1))
        c.close()

    def test_the_key_is_checked_before_the_body_is_read(self):
        for auth in ("", "Authorization: Bearer wrong-key\r\n"):
            # 7 MB announced, none sent: the answer must come without the body.
            s = self.raw(f"POST {IMPORT} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: text/csv\r\n"
                         f"Content-Length: 7000000\r\n\r\n", b"email\nstranger@example.org\n")
            answer = self.read_answer(s)
            s.close()
            self.assertTrue(answer.startswith(b"HTTP/1.1 401 "), answer[:200])
        self.assertFalse(self.suppressed("stranger@example.org"))

    def test_a_client_that_stalls_mid_row_times_out_and_its_partial_row_is_not_applied(self):
        # Over 1 KiB of complete rows: the format is recognised from the first 1 KiB (docs/suppression.md).
        complete = b"email\nfirst@example.org\nsecond@example.org\n" + b"".join(
            b"filler%03d@example.org\n" % i for i in range(60))
        partial = b"partial@example.org"  # a whole address, but its line never ends
        s = self.raw(f"POST {IMPORT} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
                     f"Content-Length: 10000\r\n\r\n", complete + partial)
        started = time.monotonic()
        self.read_answer(s)  # the relay closes the connection after http.timeout_seconds without a byte
        s.close()
        self.assertLess(time.monotonic() - started, 15)
        wait_until(lambda: "import stopped" in self.relay.read_log(), what="the import's end in the log")
        self.assertTrue(self.suppressed("first@example.org"))  # complete rows are kept (docs/suppression.md)
        self.assertTrue(self.suppressed("second@example.org"))
        self.assertFalse(self.suppressed("partial@example.org"))
        self.assertEqual(len(self.all_suppressed()), 62)


class ImportLimitTest(ImportStreamBase, unittest.TestCase):
    LIMIT = 4096
    settings = {"max_import_bytes": LIMIT}

    def test_a_content_length_over_the_limit_is_413_before_the_body(self):
        s = self.raw(f"POST {IMPORT} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
                     f"Content-Length: {self.LIMIT + 1}\r\n\r\n")
        answer = self.read_answer(s)
        s.close()
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer[:200])
        self.assertEqual(self.all_suppressed(), [])

    def test_a_chunked_body_over_the_limit_is_413_and_keeps_only_complete_rows_before_it(self):
        rows = [f"row{i:05d}@limit.example\n".encode() for i in range(400)]  # 23 bytes each
        body = b"email\n" + b"".join(rows)
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[at:at + 100]), body[at:at + 100])
                           for at in range(0, len(body), 100)) + b"0\r\n\r\n"
        s = self.raw(f"POST {IMPORT} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
                     f"Transfer-Encoding: chunked\r\n\r\n", chunked)
        answer = self.read_answer(s)
        s.close()
        self.assertTrue(answer.startswith(b"HTTP/1.1 413 "), answer[:300])
        report = json.loads(answer.partition(b"\r\n\r\n")[2])
        applied = self.all_suppressed()
        # A prefix of the rows, each of which ended within the limit; the one across it never.
        ends = [6 + 23 * (i + 1) for i in range(len(rows))]
        within = [r.decode().strip() for r, end in zip(rows, ends) if end <= self.LIMIT]
        self.assertEqual(applied, within[:len(applied)])
        self.assertGreater(len(applied), 0)
        self.assertLessEqual(len(applied), len(within))
        self.assertEqual(report["rows"], len(applied), report)
        self.assertIn("max_import_bytes", report["fatal"])


if __name__ == "__main__":
    unittest.main()
