// Renders the answer tayori mailed to an editor as her mail app shows it — the header lines
// (From, To, Subject, In-Reply-To) above the reply's HTML part — in headless Chromium (Debian's,
// driven by playwright-core) at 600 px, and saves it as a PNG.
//
//   node scripts/office-reply.mjs OUT.png HEADERS.json REPLY.html
import { chromium } from "playwright-core";
import path from "node:path";
import fs from "node:fs";
import { launch } from "./page-checks.mjs";

const [out, headersFile, htmlFile] = process.argv.slice(2);
const h = JSON.parse(fs.readFileSync(headersFile, "utf8"));
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
const rows = ["From", "To", "Subject", "Date", "In-Reply-To"]
  .map((k) => `<tr><th>${k}</th><td>${esc(h[k] ?? "")}</td></tr>`)
  .join("");
const app = `<!doctype html><meta charset="utf-8"><style>
  body { margin: 0; font-family: "Noto Sans CJK JP", sans-serif; background: #f1f3f4; }
  .bar { background: #fff; border-bottom: 1px solid #dadce0; padding: 12px 16px; }
  .bar .thread { color: #5f6368; font-size: 13px; margin-bottom: 6px; }
  table { border-collapse: collapse; font-size: 13px; }
  th { text-align: right; color: #5f6368; font-weight: normal; padding: 1px 8px 1px 0; vertical-align: top; }
  td { color: #202124; }
  iframe { border: 0; width: 100%; background: #fff; display: block; }
</style><div class="bar"><div class="thread">スレッド: ${esc(h.Thread ?? "")}</div><table>${rows}</table></div>
<iframe id="m" srcdoc="${esc(fs.readFileSync(htmlFile, "utf8"))}"></iframe>`;
const page_ = path.join(path.dirname(path.resolve(out)), ".office-reply.html");
fs.writeFileSync(page_, app);
const browser = await launch(chromium);
const page = await browser.newPage({ viewport: { width: 600, height: 800 } });
await page.goto("file://" + page_);
const frame = await (await page.$("#m")).contentFrame();
await frame.waitForLoadState();
const height = await frame.evaluate(() => document.documentElement.scrollHeight);
await page.evaluate((hh) => { document.getElementById("m").style.height = hh + "px"; }, height);
await page.screenshot({ path: out, fullPage: true });
await browser.close();
fs.unlinkSync(page_);
console.log(`saved ${out}`);
