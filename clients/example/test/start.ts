/** `npm start -w @framecast/example`: a framecast process, the feeder and the page on loopback. */
import { FramecastServer } from "@framecast/testkit";
import { DEMO_CONFIG, publishPositions, serveStatic, startFeeder } from "./demo.js";

const server = await FramecastServer.start({ config: DEMO_CONFIG, listen: process.env.FRAMECAST_LISTEN ?? "127.0.0.1:0" });
const web = await serveStatic(Number(process.env.PORT ?? 0));
startFeeder(() => server.httpUrl);
let v = 0;
setInterval(() => void publishPositions(server.httpUrl, ++v).catch(() => {}), 1000);
console.log(`framecast ${server.wsUrl}\nopen ${web.url}?ws=${encodeURIComponent(server.wsUrl)}`);
process.on("SIGINT", async () => {
  await server.stop();
  process.exit(0);
});
