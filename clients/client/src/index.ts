/** @framecast/client — browser entry (also the default for bundlers): no runtime dependencies,
 * nothing touches `window` at import. */
export { FramecastClient } from "./client.js";
export type { ClientOptions, ClientEvents } from "./client.js";
export { Channel } from "./channel.js";
export type { ChannelEvents, ChannelOptions } from "./channel.js";
export { FramecastError } from "./errors.js";
export { Clock, backoffDelay, refreshDelay, tokenExpiry, DEFAULT_RECONNECT } from "./timing.js";
export type { ReconnectOptions, ClockSample } from "./timing.js";
export type * from "./types.js";
