"""Who may complain, and how often a report is forwarded (issue 22 points 1
and 2, docs/feedback.md "Who can complain"): only a signed token of ours
proves which contact an ARF report is about; an address alone counts only
from feedback.trusted_networks. Each report is forwarded to the launch's
sender at most once, and at most feedback.forward_per_hour times an hour per
sender. Everything here is real SMTP (smtplib) to the real binary."""

import re
import unittest

from relay import Relay, wait_until
from test_feedback import BASE_URL, FBL, FEEDBACK, arf, campaign, copies_to, send
from test_monitoring import scrape

VICTIM = "victim@example.org"


def attack(victim=VICTIM):
    """The report of issue 22: no token of ours anywhere, only the victim's address."""
    return arf(f"To: <{victim}>\r\nSubject: you have won\r\nMessage-ID: <x1@attacker.example>\r\n", rcpt=victim)


def metric(relay, name_with_labels):
    """A sample's value, 0 when the relay does not expose that series."""
    m = re.search(r"^" + re.escape(name_with_labels) + r" (\S+)$", scrape(relay), re.M)
    return float(m.group(1)) if m else 0.0


def reports_processed(relay):
    return relay.read_log().count(f"feedback: to=<{FBL}>:")


def list_unsubscribe(copy):
    return re.search(r"^List-Unsubscribe: [^\r\n]*(?:\r\n[ \t][^\r\n]*)*", copy.decode(), re.M).group(0)


class ForgedComplaintTest(unittest.TestCase):
    def relay(self, feedback=None):
        extra = {"unsubscribe": {"base_url": BASE_URL},
                 "feedback": dict(FEEDBACK, forward_to_sender=False, **(feedback or {}))}
        return Relay(extra=extra)

    def rate_after_restart(self, relay):
        """The complaint-rate gauge is computed at start, then each minute: a restart reads the store now."""
        self.assertEqual(relay.stop(), 0)
        relay.start()
        return wait_until(lambda: metric(relay, "unsubrelay_complaint_rate"), what="the complaint rate computed")

    def test_address_only_report_from_an_untrusted_client_changes_nothing(self):
        # 127.0.0.1 may relay (allow_networks) but is not in feedback.trusted_networks (empty by default).
        with self.relay() as relay:
            send(relay.port, ["bystander@example.org", "angry@example.org"], campaign("601", "9601"))
            angry = wait_until(lambda: copies_to(relay, "angry@example.org"), what="the campaign delivered")[0]
            wait_until(lambda: copies_to(relay, "bystander@example.org"), what="the campaign delivered")
            # One genuine complaint (a token of ours proves it), so the rate has a known value.
            send(relay.port, [FBL], arf(list_unsubscribe(angry) + "\r\n"), sender="")
            send(relay.port, [FBL], attack(), sender="")
            wait_until(lambda: reports_processed(relay) == 2, what="both reports processed")
            wait_until(lambda: not relay.spool_ids(), what="both reports settled")

            shown = relay.cli("contact", "show", VICTIM)
            self.assertEqual(shown.returncode, 1, f"a contact was created: {shown.stdout}")
            self.assertIn("nothing is held about " + VICTIM, shown.stderr)
            self.assertEqual(metric(relay, 'unsubrelay_feedback_total{kind="unverified",source="arf"}'), 1)
            self.assertEqual(metric(relay, 'unsubrelay_feedback_total{kind="complaint",source="arf"}'), 1)
            self.assertRegex(relay.read_log(), r"feedback: unverified arf report .*client=127\.0\.0\.1")
            self.assertNotIn(f"complaint of <{VICTIM}>", relay.read_log())

            # The next campaign reaches the victim.
            send(relay.port, [VICTIM], campaign("602", "9602"))
            wait_until(lambda: copies_to(relay, VICTIM), what="the campaign delivered to the victim")
            self.assertNotRegex(relay.read_log(), rf"to=<{re.escape(VICTIM)}>, delay=\d+, status=suppressed")
            # One complaint (angry's) per three delivered copies; the forged one is no complaint.
            self.assertAlmostEqual(self.rate_after_restart(relay), 1 / 3, places=6)

    def test_address_only_report_from_a_trusted_network_is_applied(self):
        with self.relay({"trusted_networks": ["127.0.0.0/8"]}) as relay:
            send(relay.port, ["bystander@example.org"], campaign("611", "9611"))
            wait_until(lambda: copies_to(relay, "bystander@example.org"), what="a delivered campaign copy")
            send(relay.port, [FBL], attack(), sender="")
            wait_until(lambda: f"feedback: complaint of <{VICTIM}>" in relay.read_log(), what="the complaint")
            self.assertEqual(relay.cli("contact", "show", VICTIM).returncode, 0)
            self.assertEqual(metric(relay, 'unsubrelay_feedback_total{kind="complaint",source="arf"}'), 1)
            self.assertEqual(metric(relay, 'unsubrelay_feedback_total{kind="unverified",source="arf"}'), 0)

            send(relay.port, [VICTIM], campaign("612", "9612"))
            wait_until(lambda: f"to=<{VICTIM}>, delay=" in relay.read_log(), what="the copy's outcome")
            self.assertRegex(relay.read_log(), rf"to=<{re.escape(VICTIM)}>, delay=\d+, status=suppressed \(complaint")
            self.assertEqual(copies_to(relay, VICTIM), [])
            self.assertAlmostEqual(self.rate_after_restart(relay), 1.0, places=6)

    def test_token_report_from_an_untrusted_client_still_applies(self):
        with self.relay() as relay:
            send(relay.port, ["angry@example.org"], campaign("621", "9621"))
            copy = wait_until(lambda: copies_to(relay, "angry@example.org"))[0]
            # Redacted to the List-Unsubscribe header: the token is the only proof, and it is enough.
            send(relay.port, [FBL], arf(list_unsubscribe(copy) + "\r\n"), sender="")
            wait_until(lambda: "feedback: complaint of <angry@example.org>" in relay.read_log(), what="the complaint")
            self.assertEqual(metric(relay, 'unsubrelay_feedback_total{kind="complaint",source="arf"}'), 1)
            self.assertEqual(metric(relay, 'unsubrelay_feedback_total{kind="unverified",source="arf"}'), 0)


class ForwardOnceTest(unittest.TestCase):
    def relay(self, feedback=None):
        extra = {"unsubscribe": {"base_url": BASE_URL},
                 "feedback": dict(FEEDBACK, forward_to_sender=True, **(feedback or {}))}
        return Relay(extra=extra)

    def forwards(self, relay):
        return copies_to(relay, "news@example.com")

    def test_a_report_mailed_three_times_is_forwarded_once(self):
        with self.relay() as relay:
            send(relay.port, ["angry@example.org"], campaign("631", "9631"))
            copy = wait_until(lambda: copies_to(relay, "angry@example.org"))[0]
            report = arf(list_unsubscribe(copy) + "\r\n")
            for n in (1, 2, 3):
                send(relay.port, [FBL], report, sender="")
                wait_until(lambda: reports_processed(relay) == n, what=f"report {n} processed")
            wait_until(lambda: not relay.spool_ids(), what="the spool drained")
            self.assertEqual(len(self.forwards(relay)), 1)
            self.assertEqual(metric(relay, 'unsubrelay_feedback_forwards_total{result="duplicate"}'), 2)
            # A restart does not forget what was forwarded (it is in the store).
            self.assertEqual(relay.stop(), 0)
            relay.start()
            send(relay.port, [FBL], report, sender="")
            wait_until(lambda: reports_processed(relay) == 4 and not relay.spool_ids(), what="report 4 processed")
            self.assertEqual(len(self.forwards(relay)), 1)

    def test_forward_per_hour_caps_forwards_per_sender(self):
        with self.relay({"forward_per_hour": 2}) as relay:
            rcpts = [f"r{n}@example.org" for n in range(5)]
            send(relay.port, rcpts, campaign("641", "9641"))
            wait_until(lambda: all(copies_to(relay, r) for r in rcpts), what="five copies")
            for n, r in enumerate(rcpts, start=1):
                send(relay.port, [FBL], arf(list_unsubscribe(copies_to(relay, r)[0]) + "\r\n"), sender="")
                wait_until(lambda: reports_processed(relay) == n and not relay.spool_ids(),
                           what=f"report {n} processed")
            self.assertEqual(relay.read_log().count("feedback: complaint of <r"), 5)
            self.assertEqual(len(self.forwards(relay)), 2)
            self.assertEqual(metric(relay, 'unsubrelay_feedback_forwards_total{result="forwarded"}'), 2)
            self.assertEqual(metric(relay, 'unsubrelay_feedback_forwards_total{result="limited"}'), 3)
            self.assertIn("forward_per_hour (2) reached", relay.read_log())

    def test_an_unverified_report_is_never_forwarded(self):
        with self.relay() as relay:
            send(relay.port, [VICTIM], campaign("651", "9651"))
            wait_until(lambda: copies_to(relay, VICTIM))
            send(relay.port, [FBL], attack(), sender="")
            wait_until(lambda: reports_processed(relay) == 1 and not relay.spool_ids(), what="the report processed")
            self.assertEqual(self.forwards(relay), [])


if __name__ == "__main__":
    unittest.main()
