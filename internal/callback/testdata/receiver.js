// Receive a lambda-microservice callback and verify X-Lambda-Signature (Node.js, no dependencies).
const crypto = require("node:crypto");
const http = require("node:http");

function verify(header, body, secret, toleranceSec = 300) {
  const pairs = header.split(",").map((p) => p.trim().split("="));
  const t = (pairs.find(([k]) => k === "t") || [])[1] || "";
  if (!/^\d+$/.test(t) || Math.abs(Date.now() / 1000 - Number(t)) > toleranceSec) return false;
  const mac = crypto.createHmac("sha256", secret).update(`${t}.`).update(body).digest();
  return pairs.some(([k, v]) => k === "v1" && /^[0-9a-f]{64}$/.test(v) && crypto.timingSafeEqual(mac, Buffer.from(v, "hex")));
}

if (require.main === module) {
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c)).on("end", () => {
      const body = Buffer.concat(chunks); // the raw bytes, not re-encoded JSON
      const ok = verify(req.headers["x-lambda-signature"] || "", body, process.env.LAMBDA_WEBHOOK_SECRET);
      res.writeHead(ok ? 204 : 400).end();
      if (ok) console.log("verified", JSON.stringify(JSON.parse(body)));
    });
  });
  server.listen(Number(process.env.PORT || 8000), process.env.HOST, () => console.log("listening on", server.address().port));
}
module.exports = { verify };
