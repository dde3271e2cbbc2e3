"""python-hello: a Granary app in Python, run by Debian's own python3.

It shows how an app pulls an interpreter and its libraries from the host into
its package (docs/packaging.md, "Apps from Debian"). Granary starts it with
the command in spk.json; it listens on 127.0.0.1:8000 inside the grain and
keeps a note per grain in /var, the grain's storage.
"""
import html
import http.server
import os
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
NOTE = "/var/note.txt"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        user = self.headers.get("X-Granary-Username", "stranger")
        permissions = self.headers.get("X-Granary-Permissions", "")
        try:
            with open(NOTE) as f:
                note = f.read()
        except OSError:
            note = "(no note yet)"
        body = (
            "<!doctype html><title>Python hello</title>"
            f"<h1>Hello, {html.escape(user)}!</h1>"
            f"<p>Python {html.escape(sys.version.split()[0])}, "
            f"permissions: {html.escape(permissions) or 'none'}</p>"
            f"<pre>{html.escape(note)}</pre>\n"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        # Only a role with the "write" permission may change the note.
        if "write" not in self.headers.get("X-Granary-Permissions", "").split(","):
            self.send_error(403)
            return
        length = min(int(self.headers.get("Content-Length", "0")), 65536)
        text = self.rfile.read(length).decode("utf-8", "replace")
        tmp = NOTE + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, NOTE)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format, *args):
        sys.stderr.write("python-hello: " + (format % args) + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[2] == "--list-modules":
        # For make-list.sh: serve one request (modules load lazily: the server
        # needs encodings.idna only once it starts), then print every module
        # file this app imported.
        import socket
        import threading

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.handle_request, daemon=True).start()
        with socket.create_connection(("127.0.0.1", server.server_port)) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            while s.recv(65536):
                pass
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if path:
                print(os.path.realpath(path))
        sys.exit(0)
    http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
