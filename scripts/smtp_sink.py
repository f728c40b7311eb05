"""An SMTP server on loopback that keeps what it receives, for OpenOrder's tests.

Each accepted message is written as DIR/<n>.eml (the raw bytes as received) next to
DIR/<n>.json: the envelope (from, to) and the message as a mail client reads it (headers
From, To, Subject, Message-ID, Date; the decoded text/plain and text/html parts). With --fail-first N the first N messages
are refused with "451 try again later" (a transient failure). Prints "ready <port>" once
listening; runs until killed.
"""

import argparse
import email
import email.policy
import json
import os
import sys
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory, fail_first):
        self.directory = directory
        self.fail_first = fail_first
        self.seen = 0

    async def handle_DATA(self, server, session, envelope):
        self.seen += 1
        if self.seen <= self.fail_first:
            return "451 4.3.0 try again later (smtp_sink --fail-first)"
        n = len([f for f in os.listdir(self.directory) if f.endswith(".eml")]) + 1
        base = os.path.join(self.directory, f"{n:04d}")
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        parts = {}
        for part in message.walk():
            if part.get_content_maintype() == "text":
                parts[part.get_content_type()] = part.get_content()
        decoded = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "headers": {
                name: str(message[name])
                for name in ["From", "To", "Subject", "Message-ID", "Date", "Content-Type"]
                if message[name] is not None
            },
            "text": parts.get("text/plain"),
            "html": parts.get("text/html"),
        }
        with open(base + ".json.tmp", "w") as f:
            json.dump(decoded, f)
        with open(base + ".eml.tmp", "wb") as f:
            f.write(raw)
        os.rename(base + ".json.tmp", base + ".json")
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 2.0.0 OK"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    controller = Controller(Sink(args.dir, args.fail_first), hostname="127.0.0.1", port=args.port)
    controller.start()
    print(f"ready {args.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
