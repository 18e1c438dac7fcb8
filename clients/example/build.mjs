// Bundles the example with esbuild. Development React on purpose: StrictMode double-mounts
// effects only in development builds, which is what the browser test checks.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";

mkdirSync("dist", { recursive: true });
await build({
  entryPoints: ["src/main.tsx"],
  bundle: true,
  format: "esm",
  outfile: "dist/app.js",
  jsx: "automatic",
  define: { "process.env.NODE_ENV": JSON.stringify(process.env.NODE_ENV ?? "development") },
  sourcemap: true,
  logLevel: "warning",
});
copyFileSync("public/index.html", "dist/index.html");
console.log("example built: dist/index.html, dist/app.js");
