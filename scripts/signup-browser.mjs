// A reader signs up in a real browser: headless Chromium (Debian's, driven by playwright-core)
// at 375 px opens the form, fills it in, submits; the confirmation email is read from the SMTP
// server's record (aiosmtpd's received.jsonl); the browser opens its link and presses the
// button. Every page is saved light and dark and checked as the email is (page-checks.mjs).
//
//   node signup-browser.mjs OUT_DIR BASE_URL EMAIL RECEIVED_JSONL      exit 1 on any finding
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";
import { checkPage, launch } from "./page-checks.mjs";

const [outDir, base, email, received] = process.argv.slice(2);
fs.mkdirSync(outDir, { recursive: true });
const browser = await launch(chromium);
const findings = [];
const page = await browser.newPage({ viewport: { width: 375, height: 800 }, colorScheme: "light" });

async function look(name, expect) {
  const body = await page.textContent("body");
  if (!body.includes(expect)) findings.push(`${name}: "${expect}" not on the page`);
  for (const scheme of ["light", "dark"]) {
    await page.emulateMedia({ colorScheme: scheme });
    await page.screenshot({ path: path.join(outDir, `signup-${name}-375-${scheme}.png`), fullPage: true });
    const selectors = ".content h1, .content p, .content label, .content button, .footer p, .footer a";
    for (const f of await checkPage(page, selectors, 375)) findings.push(`${name}-${scheme}: ${f}`);
  }
  await page.emulateMedia({ colorScheme: "light" });
}

await page.goto(`${base}/subscribe`);
await look("form", "メール配信のお申し込み");
await page.fill("#email", email);
await page.fill("#name", "ブラウザ 花子");
// A person takes a few seconds over a form; one sent back in under 3 s is taken for a bot.
await page.waitForTimeout(3200);
await page.click("button[type=submit]");
await page.waitForLoadState();
await look("sent", "確認メールをお送りしました");

// The confirmation email, as the SMTP server received it.
let link = null;
const deadline = Date.now() + 20000;
while (!link && Date.now() < deadline) {
  const lines = fs.existsSync(received) ? fs.readFileSync(received, "utf8").split("\n") : [];
  for (const l of lines) {
    if (!l.endsWith("}")) continue;
    const m = JSON.parse(l);
    if (m.rcpt.map((r) => r.toLowerCase()).includes(email) && m.subject.includes("登録の確認")) {
      link = (m.text.match(/https?:\/\/\S+\/subscribe\/confirm\/\S+/) || [null])[0];
    }
  }
  if (!link) await new Promise((r) => setTimeout(r, 100));
}
if (!link) {
  findings.push("no confirmation email with a link arrived");
} else {
  await page.goto(link);
  await look("confirm", "登録を確定する");
  await page.click("button[type=submit]");
  await page.waitForLoadState();
  await look("done", "登録が完了しました");
}
await browser.close();
for (const f of findings) console.log(f);
console.log(`sign-up pages in ${outDir}; ${findings.length} findings`);
process.exit(findings.length ? 1 : 0);
