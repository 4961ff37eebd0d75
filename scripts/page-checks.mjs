// What a reader would see on a rendered page, checked the same way for emails and for the
// sign-up pages: nothing wider than the screen, and text at a contrast of at least 4.5:1
// against what is really behind it (which is how dark-on-dark would show in dark mode).
//
// checkPage(page, selectors, width) → list of findings (strings)
// launch(chromium) → Debian's Chromium, headless, with nothing reaching out to the network
export async function checkPage(page, selectors, width) {
  const result = await page.evaluate((selectors) => {
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
    for (const el of document.querySelectorAll(selectors)) {
      // Hidden on purpose: the email preheader, the sign-up form's honeypot.
      if (!el.textContent.trim() || el.closest(".preheader") || el.closest("[style*='-10000px']")) continue;
      const fg = lum(rgb(getComputedStyle(el).color));
      const bg = lum(background(el));
      const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
      if (ratio < 4.5) low.push(`${el.className || el.tagName}: ${ratio.toFixed(2)} "${el.textContent.trim().slice(0, 20)}"`);
    }
    return { scrollWidth: document.documentElement.scrollWidth, low };
  }, selectors);
  const findings = [];
  if (result.scrollWidth > width) findings.push(`${result.scrollWidth}px wide on a ${width}px screen`);
  for (const l of result.low) findings.push(`contrast ${l}`);
  return findings;
}

export function launch(chromium) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}
