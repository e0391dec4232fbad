#!/usr/bin/env python3
"""Signs an agent in over the agent socket and prints every frame it gets.

Standard library only (a minimal WebSocket client), for trying the agent API:
    python3 docs/agent_socket.py <appSid> <agentNo> <pwd> [host:port]
"""
import base64, json, os, socket, struct, sys

app, agent, pwd = sys.argv[1:4]
host, port = (sys.argv[4] if len(sys.argv) > 4 else "127.0.0.1:8080").split(":")
conn = socket.create_connection((host, int(port)))
key = base64.b64encode(os.urandom(16)).decode()
conn.sendall((f"GET /v1/Applications/{app}/cti?agentNo={agent} HTTP/1.1\r\nHost: {host}\r\n"
              f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
              "Sec-WebSocket-Version: 13\r\n\r\n").encode())
reader = conn.makefile("rb")
status = reader.readline()
if b" 101 " not in status:
    sys.exit(f"refused: {status.decode().strip()}")
while reader.readline() not in (b"\r\n", b""):
    pass


def send(frame):
    data, mask = json.dumps(frame).encode(), os.urandom(4)
    size = bytes([0x80 | len(data)]) if len(data) < 126 else bytes([0xFE]) + struct.pack(">H", len(data))
    conn.sendall(bytes([0x81]) + size + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def receive():
    while True:
        head = reader.read(2)
        if len(head) < 2:
            sys.exit("connection closed")
        size = head[1] & 0x7F
        if size == 126:
            size = struct.unpack(">H", reader.read(2))[0]
        elif size == 127:
            size = struct.unpack(">Q", reader.read(8))[0]
        data, opcode = reader.read(size), head[0] & 0x0F
        if opcode == 0x1:
            return json.loads(data)
        if opcode == 0x8:
            sys.exit(f"closed by the server: {struct.unpack('>H', data[:2])[0] if data else ''}")
        if opcode == 0x9:  # ping: answer with a pong (masked, as clients must)
            mask = os.urandom(4)
            conn.sendall(bytes([0x8A, 0x80 | size]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


send({"id": 1, "cmd": "auth", "params": {"pwd": pwd}})
print(json.dumps(receive(), ensure_ascii=False))
send({"id": 2, "cmd": "login", "params": {}})
while True:
    print(json.dumps(receive(), ensure_ascii=False), flush=True)
