#!/usr/bin/env python3
"""Regenerates the MIME samples in this folder (committed; run only to change them).
campaign-alternative-qp.eml (multipart/mixed > alternative QP text+html, PDF) was written by hand.

Real-world shapes: what ESPs and MUAs send. Every file uses CRLF line ends
except lf-only.eml.
"""
import base64
import random

random.seed(42)


def crlf(text):
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def write(name, text, keep_newlines=False):
    with open(name, "w", newline="") as f:
        f.write(text if keep_newlines else crlf(text))


pdf = base64.encodebytes(b"%PDF-1.4\n" + bytes(random.getrandbits(8) for _ in range(2000))).decode()
html_b64 = base64.encodebytes(
    '<html><body><h1>Sal\u00fct \u00e7a va</h1><p>Offres de la semaine.</p>'
    '<p><a href="{{unsubscribe_url}}">Se d\u00e9sabonner</a> &middot; $uid$</p></body></html>'.encode("utf-8")).decode()

write("campaign-base64-html.eml", f"""From: Boutique <promo@shop.example>
To: client@example.org
Subject: =?ISO-8859-1?Q?Offres_de_la_semaine_=E0_ne_pas_manquer?=
Date: Mon, 23 Nov 2026 08:00:00 +0100
Message-ID: <b64-1@shop.example>
X-Campaign-Id: 31337
MIME-Version: 1.0
Content-Type: text/html; charset=UTF-8
Content-Transfer-Encoding: base64

{html_b64}""")

write("campaign-no-placeholder.eml", f"""From: News <news@example.com>
To: list@example.org
Subject: Weekly digest
Date: Tue, 24 Nov 2026 10:00:00 +0000
Message-ID: <digest-7@example.com>
X-Campaign-Id: 4242
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="alt-7"

--alt-7
Content-Type: text/plain; charset=us-ascii

This week: nothing new.

--alt-7
Content-Type: text/html; charset=us-ascii

<html><body><p>This week: nothing new.</p></BODY></html>

--alt-7--
""")

write("transactional.eml", """From: Shop <orders@shop.example>
To: buyer@example.org
Subject: Your order 1234
Date: Tue, 24 Nov 2026 10:00:00 +0000
Message-ID: <order-1234@shop.example>
DKIM-Signature: v=1; a=rsa-sha256; d=shop.example; s=s1; h=from:to:subject;
	bh=abc; b=def
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Thanks for your order.   Trailing spaces stay.
No placeholder appears in this order confirmation.
""")

write("nested-mixed-rfc822.eml", f"""From: Ops <ops@example.com>
To: team@example.org
Subject: Forwarded campaign with attachments
Date: Tue, 24 Nov 2026 11:00:00 +0000
Message-ID: <fwd-1@example.com>
X-Campaign-Id: 99
X-Launch-List-Id: 77
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=mixed1

preamble text
--mixed1
Content-Type: multipart/related; boundary="rel1"

--rel1
Content-Type: multipart/alternative; boundary="alt1"

--alt1
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

Gr=FC=DFe! Abmelden: *|UNSUBSCRIBE|*
--alt1
Content-Type: text/html; charset=iso-8859-1
Content-Transfer-Encoding: 7bit

<p>Abmelden: <a href="*|UNSUBSCRIBE|*">hier</a> ($llid$/$cid$)</p>
--alt1--

--rel1
Content-Type: image/png
Content-Transfer-Encoding: base64
Content-ID: <logo>

iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==
--rel1--

--mixed1
Content-Type: message/rfc822

From: someone@example.net
Subject: inner message keeps its placeholder

Inner *|UNSUBSCRIBE|* must stay.
--mixed1
Content-Type: text/plain; name="notes.txt"
Content-Disposition: attachment; filename="notes.txt"

An attached file with *|UNSUBSCRIBE|* stays as it is.
--mixed1
Content-Type: application/pdf; name="r.pdf"
Content-Transfer-Encoding: base64

{pdf}
--mixed1--
epilogue
""")

write("lf-only.eml", """From: a@example.com
To: b@example.org
Subject: LF line ends
X-Campaign-Id: 5
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Link: *|UNSUBSCRIBE|*
""", keep_newlines=True)

write("malformed-missing-boundary.eml", """From: a@example.com
To: b@example.org
Subject: broken
X-Campaign-Id: 6
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="never-closed"

--never-closed
Content-Type: text/plain

unsubscribe here: *|UNSUBSCRIBE|*
--never-closed
Content-Type: text/html

<a href="*|UNSUBSCRIBE|*">x</a>
""")

write("malformed-bad-base64.eml", """From: a@example.com
To: b@example.org
Subject: bad base64
X-Campaign-Id: 7
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=b

--b
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: base64

PGh0bWw+|||not base64!!!
--b
Content-Type: text/plain; charset=utf-8

plain link: *|UNSUBSCRIBE|*
--b--
""")

write("utf16-part.eml", """From: a@example.com
To: b@example.org
Subject: utf-16
X-Campaign-Id: 8
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=b

--b
Content-Type: text/plain; charset=utf-16le
Content-Transfer-Encoding: base64

KgB8AFUATgBTAFUAQgBTAEMAUgBJAEIARQB8ACoA
--b
Content-Type: text/plain; charset=utf-8

link: *|UNSUBSCRIBE|*
--b--
""")
