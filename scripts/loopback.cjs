// Preload (`node -r ./scripts/loopback.cjs main.js`) that makes every TCP server of the
// process listen on 127.0.0.1 only, whatever host it asks for. kinesis-mock binds
// 0.0.0.0 and has no setting for it; a test emulator must not be reachable from the
// network. http.Server, https.Server and tls.Server all inherit this listen().
"use strict";

const net = require("net");

const LOOPBACK = "127.0.0.1";
const originalListen = net.Server.prototype.listen;

function isPort(value) {
  return typeof value === "number" || (typeof value === "string" && /^\d+$/.test(value));
}

net.Server.prototype.listen = function listen(...args) {
  const first = args[0];
  if (isPort(first)) {
    // listen(port[, host][, backlog][, callback])
    if (typeof args[1] === "string") {
      args[1] = LOOPBACK;
    } else {
      args.splice(1, 0, LOOPBACK);
    }
  } else if (first !== null && typeof first === "object" && !("fd" in first) && !("_handle" in first)) {
    // listen(options[, callback]); a unix socket path is already local.
    if (first.path === undefined) {
      args[0] = { ...first, host: LOOPBACK, ipv6Only: false };
    }
  } else if (first === undefined || typeof first === "function") {
    // listen() or listen(callback): a random port on all interfaces otherwise.
    args.unshift(0, LOOPBACK);
  }
  return originalListen.apply(this, args);
};
