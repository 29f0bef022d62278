/**
 * Where a proxied request goes: the CONNECT authority or the absolute-form
 * URL, checked against what the request says later (Host header, SNI, dot
 * segments). The upstream is always the target the sandbox asked for first.
 *
 * @module
 */

import { canonicalHost } from "./host_pattern.ts";
import { getHeaders, type RequestHead } from "./http1.ts";
import type { RefusalCode } from "./_responses.ts";

export interface Tunnel {
  host: string;
  port: number;
  secure: boolean;
  /** SNI differed from the CONNECT host: every request gets 421. */
  sniMismatch: string | null;
}

/** Splits an authority-form target `host:port` / `[v6]:port`. */
export function parseAuthority(
  target: string,
): { host: string; port: number } | null {
  const match = target.match(/^(\[[^\]]+\]|[^:\[\]]+):(\d{1,5})$/);
  if (!match) return null;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return null;
  try {
    return { host: canonicalHost(match[1]!), port };
  } catch {
    return null;
  }
}

/**
 * Whether a request path (query excluded) has `.` or `..` segments, also
 * percent-encoded (`%2e%2e`) or with backslashes some servers treat as '/'.
 */
export function hasDotSegments(path: string): boolean {
  const end = path.search(/[?#]/);
  const raw = (end === -1 ? path : path.slice(0, end)).replace(/%2e/gi, ".");
  return raw.split(/\/|\\|%2f|%5c/i).some((segment) =>
    segment === "." || segment === ".."
  );
}

export interface Target {
  host: string;
  port: number;
  scheme: "http" | "https";
  /** Origin-form target sent upstream. */
  path: string;
}

/** Why a request has no target to decide on. */
export interface TargetRefusal {
  status: number;
  code: RefusalCode;
  message: string;
  host?: string;
  port?: number;
}

/** Returns the request's target, or a refusal. */
export function resolveTarget(
  request: RequestHead,
  tunnel: Tunnel | null,
): Target | TargetRefusal {
  const hosts = getHeaders(request.headers, "host");
  if (hosts.length > 1) {
    return {
      status: 400,
      code: "bad-request",
      message: "more than one Host header",
    };
  }
  const hostHeader = hosts[0];
  if (tunnel) {
    let path = request.target;
    if (!path.startsWith("/") && path !== "*") {
      const url = safeUrl(path);
      let host: string | null = null;
      try {
        host = url && !url.username && !url.password ? hostOf(url) : null;
      } catch {
        // "other.host:443" (a nested CONNECT's authority) parses as a URL
        // with an empty host: not a request target either.
      }
      if (!url || host === null || request.method.toUpperCase() === "CONNECT") {
        return {
          status: 400,
          code: "bad-request",
          message: request.method.toUpperCase() === "CONNECT"
            ? "CONNECT inside a tunnel is refused"
            : "request target must be a path inside a tunnel",
        };
      }
      if (host !== tunnel.host || portOf(url) !== tunnel.port) {
        return {
          status: 421,
          code: "misdirected",
          message:
            `request for '${url.host}' inside a tunnel to '${tunnel.host}:${tunnel.port}'`,
        };
      }
      path = url.pathname + url.search;
    }
    if (tunnel.sniMismatch) {
      return {
        status: 421,
        code: "misdirected",
        message: `TLS server name '${
          tunnel.sniMismatch.slice(0, 255)
        }' differs from the CONNECT host '${tunnel.host}'`,
      };
    }
    if (hostHeader === undefined) {
      if (request.version === "HTTP/1.1") {
        return {
          status: 400,
          code: "bad-request",
          message: "missing Host header",
        };
      }
    } else if (
      !sameAuthority(
        hostHeader,
        tunnel.host,
        tunnel.port,
        tunnel.secure ? 443 : 80,
      )
    ) {
      // The Host header names another host than the tunnel: a fronting or
      // confused-deputy attempt. The upstream stays the CONNECT target.
      return {
        status: 421,
        code: "misdirected",
        message: `Host '${
          hostHeader.slice(0, 255)
        }' differs from the CONNECT host '${tunnel.host}:${tunnel.port}'`,
      };
    }
    return {
      host: tunnel.host,
      port: tunnel.port,
      scheme: tunnel.secure ? "https" : "http",
      path,
    };
  }
  // Outside a tunnel only absolute-form http:// (and ws://) is proxied.
  const url = safeUrl(request.target);
  if (!url || !/^(http|ws):$/.test(url.protocol)) {
    const https = url && /^(https|wss):$/.test(url.protocol);
    return {
      status: 400,
      code: "bad-request",
      message: https
        ? "https requests must use CONNECT"
        : "only absolute-form http:// requests and CONNECT are proxied",
    };
  }
  if (url.username || url.password) {
    return {
      status: 400,
      code: "bad-request",
      message: "credentials in the request URL are refused",
    };
  }
  let host: string;
  try {
    host = hostOf(url);
  } catch {
    return {
      status: 400,
      code: "bad-request",
      message: "invalid host in the request URL",
    };
  }
  const port = portOf(url);
  if (hostHeader === undefined || !sameAuthority(hostHeader, host, port, 80)) {
    // Smuggling shape: the proxy would decide on one host while a
    // Host-routed upstream serves another.
    return {
      status: 400,
      code: "bad-request",
      message: `Host header '${
        (hostHeader ?? "").slice(0, 255)
      }' does not match the request URL host '${host}:${port}'`,
      host,
      port,
    };
  }
  return { host, port, scheme: "http", path: url.pathname + url.search };
}

function safeUrl(text: string): URL | null {
  try {
    return new URL(text);
  } catch {
    return null;
  }
}

function hostOf(url: URL): string {
  return canonicalHost(url.hostname.replace(/^\[|\]$/g, ""));
}

function portOf(url: URL): number {
  if (url.port) return Number(url.port);
  return url.protocol === "https:" || url.protocol === "wss:" ? 443 : 80;
}

function sameAuthority(
  value: string,
  host: string,
  port: number,
  defaultPort: number,
): boolean {
  const match = value.trim().match(/^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/);
  if (!match) return false;
  let candidate: string;
  try {
    candidate = canonicalHost(match[1]!);
  } catch {
    return false;
  }
  const candidatePort = match[2] === undefined ? defaultPort : Number(match[2]);
  return candidate === host && candidatePort === port;
}
