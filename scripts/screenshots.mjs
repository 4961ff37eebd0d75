// Renders email HTML files in headless Chromium (Debian's, driven by playwright-core) at 375 and
// 600 px, light and dark, saves PNGs, and checks what a reader would see: nothing wider than
// the screen, and body text, editor's note and footer at a contrast of at least 4.5:1 against
// what is really behind them (no dark-on-dark in dark mode).
//
//   node scripts/screenshots.mjs OUT_DIR EMAIL.html...      exit 1 on any finding
import { chromium } from "playwright-core";
import path from "node:path";
import fs from "node:fs";
import { checkPage, launch } from "./page-checks.mjs";

const [outDir, ...files] = process.argv.slice(2);
fs.mkdirSync(outDir, { recursive: true });
const browser = await launch(chromium);
const findings = [];
for (const file of files) {
  for (const width of [375, 600]) {
    for (const scheme of ["light", "dark"]) {
      const page = await browser.newPage({ viewport: { width, height: 800 }, colorScheme: scheme });
      await page.goto("file://" + path.resolve(file));
      const name = `${path.basename(file, ".html")}-${width}-${scheme}.png`;
      await page.screenshot({ path: path.join(outDir, name), fullPage: true });
      const selectors = ".content p, .content li, .content h1, .content h2, .content h3, .editors-note p, .footer p, .footer a";
      for (const f of await checkPage(page, selectors, width)) findings.push(`${name}: ${f}`);
      await page.close();
    }
  }
}
await browser.close();
for (const f of findings) console.log(f);
console.log(`${files.length * 4} screenshots in ${outDir}; ${findings.length} findings`);
process.exit(findings.length ? 1 : 0);
