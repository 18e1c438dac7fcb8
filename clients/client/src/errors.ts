/** Errors a framecast client reports. `code` is the server's error code (`FORBIDDEN`,
 * `RATE_LIMITED`, …) or one of the client's own: `NOT_CONNECTED`, `CONNECTION_LOST`, `TIMEOUT`,
 * `CLOSED`, `TOKEN_REJECTED`, `PROTOCOL`. */
export class FramecastError extends Error {
  readonly code: string;
  /** Whether trying again later may succeed. */
  readonly retryable: boolean;

  constructor(code: string, message: string, retryable = false) {
    super(message);
    this.name = "FramecastError";
    this.code = code;
    this.retryable = retryable;
  }
}

const RETRYABLE = new Set(["RATE_LIMITED", "OVERLOADED", "UNAVAILABLE", "NOT_CONNECTED", "CONNECTION_LOST", "TIMEOUT"]);

/** The error for a server `error` reply. */
export function serverError(code: unknown, message: unknown): FramecastError {
  const c = typeof code === "string" ? code : "UNKNOWN";
  return new FramecastError(c, typeof message === "string" ? message : c, RETRYABLE.has(c));
}

export function clientError(code: string, message: string): FramecastError {
  return new FramecastError(code, message, RETRYABLE.has(code));
}
