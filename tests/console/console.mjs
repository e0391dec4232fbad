// Drives /console in headless Chromium as an operator would: sign in, search a time range,
// page through it, open a conversation (its legs and deliveries), re-push its CDR.
// Usage: node console.mjs <base-url> <sid> <token> <from YYYY-MM-DDTHH:mm:ss> <to …> <expected ids, comma separated> <conversation id>
// Prints one JSON line with what the page showed; exits non-zero on any failure.
import { chromium } from "playwright-core";

const [base, sid, token, from, to, expected, conversation] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--headless=new"],
});
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${base}/console`);
  await page.fill("#sid", sid);
  await page.fill("#token", "wrong");
  await page.click("#signin-form button");
  await page.waitForSelector("#signin-error:not(:empty)");
  const refused = await page.textContent("#signin-error");
  await page.fill("#token", token);
  await page.click("#signin-form button");
  await page.waitForSelector("#search:not([hidden])");
  await page.fill("#from", from);
  await page.fill("#to", to);
  await page.fill("#page-size", "2");
  await page.click("#by-range button");
  const ids = [];
  for (;;) {
    await page.waitForFunction((n) => document.querySelectorAll("#results tbody tr").length > n, ids.length);
    const rows = await page.$$eval("#results tbody tr", (trs) => trs.map((tr) => tr.dataset.id));
    ids.splice(0, ids.length, ...rows);
    if (await page.isHidden("#next-page")) break;
    await page.click("#next-page");
  }
  await page.click(`#results tbody tr[data-id="${conversation}"]`);
  await page.waitForSelector("#legs-table");
  const legs = await page.$$eval("#legs-table tr", (trs) => trs.length - 1);
  await page.waitForSelector("#deliveries tbody tr.delivery");
  const deliveries = await page.$$eval("#deliveries tbody tr.delivery", (trs) => trs.length);
  await page.click("#repush");
  await page.waitForSelector("#repush-result:not(:empty)");
  const repushed = await page.textContent("#repush-result");
  const after = await page.$$eval("#deliveries tbody tr.delivery", (trs) => trs.length);
  const result = { refused, ids, legs, deliveries, repushed, after, errors };
  console.log(JSON.stringify(result));
  const want = expected.split(",").sort();
  if (JSON.stringify([...ids].sort()) !== JSON.stringify(want) || errors.length) process.exit(1);
} finally {
  await browser.close();
}
