#!/usr/bin/env python3
"""A real SMTP server for tayori's tests: aiosmtpd (not our code) with faults injected.

Usage: smtp_server.py OUT_DIR [--fail-first-451 ADDR]... [--reject-550 ADDR]...
                              [--drop-first-data ADDR]... [--delay-ms N]
                              [--reject-mail-from REPLY] [--reject-mail-from-after N]
                              [--tls CERT KEY] [--auth USER:PASSWORD]
                              [--full-552 ADDR]... [--reject-data-550 ADDR]...
                              [--pipelining] [--slow-first-rcpt ADDR MS]
                              [--extra-reply-after ADDR]

--reject-mail-from answers REPLY (e.g. "550 5.7.1 sender rejected") to every MAIL FROM after
the first N messages were accepted; --tls offers STARTTLS with that certificate; --auth requires
AUTH (only over TLS when --tls is given) with those credentials. --full-552 answers "mailbox
full" at RCPT; --reject-data-550 answers "550 5.1.1 user unknown" at the end of DATA (a content
filter that words its refusal as a missing mailbox). --pipelining offers PIPELINING (RFC 2920)
in the EHLO reply: aiosmtpd reads commands one line at a time from its buffer, so commands
written together are answered in order, as by any server that offers it. --slow-first-rcpt
answers the first RCPT TO of ADDR only after MS milliseconds (a server tarpitting a recipient).
--extra-reply-after sends one reply too many after accepting ADDR's message (a broken server:
every later reply answers the command before).

Binds 127.0.0.1 on a free port and prints "PORT <n>" once ready. Every accepted message is
appended to OUT_DIR/received.jsonl as {"rcpt": [...], "message_id": ..., "subject": ...,
"headers": {...}, "text": ..., "html": ...}, flushed before the 250 reply is sent.
"""
import argparse
import asyncio
import email
import email.policy
import json
import os
import signal
import socket
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


class Faults:
    def __init__(self, args):
        self.first_451 = {a.lower() for a in args.fail_first_451}
        self.reject = {a.lower() for a in args.reject_550}
        self.policy = {a.lower() for a in args.reject_policy}
        self.full = {a.lower() for a in args.full_552}
        self.data_550 = {a.lower() for a in args.reject_data_550}
        self.drop_first = {a.lower() for a in args.drop_first_data}
        self.seen_451 = set()
        self.dropped = set()
        self.delay = args.delay_ms / 1000.0
        self.mail_from_reply = args.reject_mail_from
        self.mail_from_after = args.reject_mail_from_after
        self.accepted = 0
        self.pipelining = args.pipelining
        self.extra_after = {a.lower() for a in args.extra_reply_after}
        self.slow_first = {a.lower(): int(ms) / 1000.0 for a, ms in args.slow_first_rcpt}


class Handler:
    def __init__(self, out, faults):
        self.out = out
        self.faults = faults

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # With this hook aiosmtpd leaves recording the client's name to it.
        session.host_name = hostname
        if self.faults.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        f = self.faults
        if f.mail_from_reply and f.accepted >= f.mail_from_after:
            return f.mail_from_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        a = address.lower()
        slow = self.faults.slow_first.pop(a, None)
        if slow:
            await asyncio.sleep(slow)
        if a in self.faults.reject:
            return "550 5.1.1 <%s>: user unknown" % address
        if a in self.faults.policy:
            return "550 5.7.1 <%s>: recipient rejected by local policy" % address
        if a in self.faults.full:
            return "552 5.2.2 <%s>: mailbox full" % address
        if a in self.faults.first_451 and a not in self.faults.seen_451:
            self.faults.seen_451.add(a)
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        rcpts = [r.lower() for r in envelope.rcpt_tos]
        for a in rcpts:
            if a in self.faults.drop_first and a not in self.faults.dropped:
                self.faults.dropped.add(a)
                # Hang up after the body arrived, before any reply: the client cannot know.
                server.transport.close()
                return "421 closing"
        if any(a in self.faults.data_550 for a in rcpts):
            # A content filter that words its refusal as a missing mailbox, after DATA.
            return "550 5.1.1 user unknown"
        if self.faults.delay:
            await asyncio.sleep(self.faults.delay)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        record = {
            "rcpt": envelope.rcpt_tos,
            "mail_from": envelope.mail_from,
            "message_id": msg.get("Message-ID"),
            "subject": str(msg.get("Subject")),
            "headers": {k: str(v) for k, v in msg.items()},
            "text": text.get_content() if text else None,
            "html": html.get_content() if html else None,
            "at": time.time(),
            "peer": list(session.peer) if session.peer else None,
        }
        raw_dir = os.path.join(self.out, "raw")
        os.makedirs(raw_dir, exist_ok=True)
        with open(os.path.join(raw_dir, "%d.eml" % len(os.listdir(raw_dir))), "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(os.path.join(self.out, "received.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.faults.accepted += 1
        if any(a in self.faults.extra_after for a in rcpts):
            return "250 2.0.0 OK queued\r\n250 2.0.0 OK queued again"
        return "250 2.0.0 OK queued"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--fail-first-451", action="append", default=[])
    p.add_argument("--reject-550", action="append", default=[])
    p.add_argument("--reject-policy", action="append", default=[])
    p.add_argument("--full-552", action="append", default=[])
    p.add_argument("--reject-data-550", action="append", default=[])
    p.add_argument("--drop-first-data", action="append", default=[])
    p.add_argument("--delay-ms", type=int, default=0)
    p.add_argument("--pipelining", action="store_true")
    p.add_argument("--extra-reply-after", action="append", default=[])
    p.add_argument("--slow-first-rcpt", nargs=2, action="append", default=[], metavar=("ADDR", "MS"))
    p.add_argument("--reject-mail-from", default=None)
    p.add_argument("--reject-mail-from-after", type=int, default=0)
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte (smtps)")
    p.add_argument("--auth", default=None)
    p.add_argument("--port", type=int, default=0, help="this port instead of a free one")
    args = p.parse_args()
    extra = {}
    if args.tls:
        import ssl
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls[0], args.tls[1])
        if args.implicit_tls:
            extra["ssl_context"] = ctx
        else:
            extra["tls_context"] = ctx
    if args.auth:
        from aiosmtpd.smtp import AuthResult
        user, password = args.auth.split(":", 1)

        def check(server, session, envelope, mechanism, auth_data):
            ok = getattr(auth_data, "login", b"") == user.encode() and \
                getattr(auth_data, "password", b"") == password.encode()
            return AuthResult(success=ok, handled=False)

        extra["authenticator"] = check
        extra["auth_required"] = True
        # aiosmtpd offers AUTH over STARTTLS only; over implicit TLS it must be told TLS is there.
        extra["auth_require_tls"] = bool(args.tls) and not args.implicit_tls
    # Block the stop signals before the server thread starts, so sigwait below receives them.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    handler = Handler(args.out, Faults(args))
    # A free port, asked of the kernel; another process may take it before aiosmtpd binds it,
    # so try again with a new one when that happens.
    for attempt in range(20):
        s = socket.socket()
        # A port given again (a relay brought back) may still have connections in TIME_WAIT.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", args.port))
        port = s.getsockname()[1]
        s.close()
        controller = Controller(handler, hostname="127.0.0.1", port=port, decode_data=False,
                                server_hostname="sink.test", **extra)
        try:
            controller.start()
            break
        except Exception:  # noqa: BLE001 - address in use, or the start check failed
            if attempt == 19:
                raise
    print("PORT %d" % port, flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    controller.stop()


if __name__ == "__main__":
    main()
