#!/usr/bin/env python3
"""A minimal ESL client: drives the sandbox (or FreeSWITCH) over a plain socket.
Usage: esl_client.py HOST PORT [PASSWORD]. Places one call to a 9995 number (answers,
hangs up 2 s later) and prints the replies and the events it sees."""
import socket, sys, urllib.parse

host, port = sys.argv[1], int(sys.argv[2])
password = sys.argv[3] if len(sys.argv) > 3 else "ClueCon"
sock = socket.create_connection((host, port), timeout=10)
buf = b""

def read_message():
    global buf
    while b"\n\n" not in buf:
        buf += sock.recv(65536)
    head, buf = buf.split(b"\n\n", 1)
    headers = dict(line.split(": ", 1) for line in head.decode().splitlines() if ": " in line)
    length = int(headers.get("Content-Length", 0))
    while len(buf) < length:
        buf += sock.recv(65536)
    body, buf = buf[:length], buf[length:]
    return headers, body.decode()

def send(command):
    sock.sendall(command.encode() + b"\n\n")

print(read_message()[0]["Content-Type"])                     # auth/request
send("auth " + password); print(read_message()[0]["Reply-Text"])
send("event plain CHANNEL_ANSWER CHANNEL_HANGUP_COMPLETE"); print(read_message()[0]["Reply-Text"])
send("bgapi originate sofia/gateway/pstn/13800009995 &park()"); print(read_message()[0]["Reply-Text"])
while True:
    headers, body = read_message()
    if headers.get("Content-Type") != "text/event-plain":
        continue
    event = dict(l.split(": ", 1) for l in body.split("\n\n")[0].splitlines() if ": " in l)
    name = event["Event-Name"]
    print(name, urllib.parse.unquote(event.get("Hangup-Cause", "")))
    if name == "CHANNEL_HANGUP_COMPLETE":
        break
send("exit"); print(read_message()[0]["Reply-Text"])
