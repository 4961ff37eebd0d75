// Renders email HTML files in headless Chromium (Debian's, driven by playwright-core) at 375 and
// 600 px, light and dark, saves PNGs, and checks what a reader would see: nothing wider than
// the screen, and body text, editor's note and footer at a contrast of at least 4.5:1 against
// what is really behind them (no dark-on-dark in dark mode).
//
//   node scripts/screenshots.mjs OUT_DIR EMAIL.html...      exit 1 on any finding
import { chromium } from "playwright-core";
import path from "node:path";
import fs from "node:fs";

const [outDir, ...files] = process.argv.slice(2);
fs.mkdirSync(outDir, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const findings = [];
for (const file of files) {
  for (const width of [375, 600]) {
    for (const scheme of ["light", "dark"]) {
      const page = await browser.newPage({ viewport: { width, height: 800 }, colorScheme: scheme });
      await page.goto("file://" + path.resolve(file));
      const name = `${path.basename(file, ".html")}-${width}-${scheme}.png`;
      await page.screenshot({ path: path.join(outDir, name), fullPage: true });
      const result = await page.evaluate(() => {
        const rgb = (s) => (s.match(/[\d.]+/g) || []).map(Number);
        const lum = ([r, g, b]) => {
          const c = [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
          return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
        };
        const background = (el) => {
          for (let e = el; e; e = e.parentElement) {
            const c = rgb(getComputedStyle(e).backgroundColor);
            if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
          }
          return [255, 255, 255];
        };
        const low = [];
        for (const el of document.querySelectorAll(".content p, .content li, .content h1, .content h2, .content h3, .editors-note p, .footer p, .footer a")) {
          if (!el.textContent.trim() || el.closest(".preheader")) continue;
          const fg = lum(rgb(getComputedStyle(el).color));
          const bg = lum(background(el));
          const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
          if (ratio < 4.5) low.push(`${el.className || el.tagName}: ${ratio.toFixed(2)} "${el.textContent.trim().slice(0, 20)}"`);
        }
        return { scrollWidth: document.documentElement.scrollWidth, low };
      });
      if (result.scrollWidth > width) findings.push(`${name}: ${result.scrollWidth}px wide on a ${width}px screen`);
      for (const l of result.low) findings.push(`${name}: contrast ${l}`);
      await page.close();
    }
  }
}
await browser.close();
for (const f of findings) console.log(f);
console.log(`${files.length * 4} screenshots in ${outDir}; ${findings.length} findings`);
process.exit(findings.length ? 1 : 0);
