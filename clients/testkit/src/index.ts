export * from "./server.js";
export * from "./proxy.js";
export * from "./util.js";
export * from "./probe.js";
