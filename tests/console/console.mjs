// Drives /console in headless Chromium as an operator would: a wrong token, sign in, the
// default range, search a time range page by page, the chart, open a conversation (its
// legs and callbacks), push its CDR again, a failed lookup, the failed-deliveries view
// with its own re-push, sign out.
// Usage: node console.mjs <base-url> <sid> <token> <from YYYY-MM-DDTHH:mm:ss> <to …> <expected ids, comma separated> <conversation id>
// With SCREENSHOTS=<dir> it also saves a PNG of each view there.
// Prints one JSON line with what the page showed; exits non-zero on any failure.
import { chromium } from "playwright-core";

const [base, sid, token, from, to, expected, conversation] = process.argv.slice(2);
const shots = process.env.SCREENSHOTS;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--headless=new"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const shot = async (name) => { if (shots) await page.screenshot({ path: `${shots}/console-${name}.png`, fullPage: true }); };
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${base}/console`);
  const zone = await page.textContent("#zone");
  await page.fill("#sid", sid);
  await page.fill("#token", "wrong");
  await page.click("#signin-form button");
  await page.waitForSelector("#signin-error:not(:empty)");
  const refused = await page.textContent("#signin-error");
  await shot("sign-in");
  await page.fill("#token", token);
  await page.click("#signin-form button");
  await page.waitForSelector("#search:not([hidden])");
  const defaults = [await page.inputValue("#from"), await page.inputValue("#to")];
  // Chromium keeps a datetime-local value with zero seconds as HH:mm, so a fill of
  // "…:00" reads back different and Playwright refuses it: give it the short form.
  const local = (v) => (v.endsWith(":00") ? v.slice(0, -3) : v);
  await page.fill("#from", local(from));
  await page.fill("#to", local(to));
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
  const cells = await page.$$eval("#results tbody tr", (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  await page.waitForSelector("#chart:not([hidden]) rect.bar");
  const bars = await page.$$eval("#chart rect.bar", (rects) => rects.length);
  await shot("calls");
  await page.click(`#results tbody tr[data-id="${conversation}"]`);
  await page.waitForSelector("#legs-table");
  const legs = await page.$$eval("#legs-table tr", (trs) => trs.slice(1).map((tr) => [...tr.children].map((td) => td.textContent)));
  const outcome = await page.textContent("#detail-outcome");
  await page.waitForSelector("#deliveries tbody tr.delivery");
  const deliveryRows = await page.$$eval("#deliveries tbody tr.delivery", (trs) => trs.map((tr) => [...tr.children].slice(0, 4).map((td) => td.textContent)));
  await page.click("#repush");
  await page.waitForSelector("#repush-result:not(:empty)");
  const repushed = await page.textContent("#repush-result");
  const after = await page.$$eval("#deliveries tbody tr.delivery", (trs) => trs.length);
  await shot("conversation");
  await page.fill("#cdr-id", "CV00000000000000000000000000000000");
  await page.click("#by-id button");
  await page.waitForSelector("#search-error:not(:empty)");
  const lookup = { error: await page.textContent("#search-error"), detailHidden: await page.isHidden("#detail") };
  await page.click("#tab-failed");
  await page.waitForSelector("#failed-table tbody tr.failed-delivery");
  const failed = await page.$$eval("#failed-table tbody tr.failed-delivery", (trs) => trs.map((tr) => tr.dataset.id));
  await page.click("#failed-table tbody tr.failed-delivery button");
  await page.waitForFunction(() => document.querySelector("#failed-table tbody tr.failed-delivery span")?.textContent.trim());
  const failedRepush = (await page.textContent("#failed-table tbody tr.failed-delivery span")).trim();
  await shot("failed");
  await page.click("#sign-out");
  await page.waitForSelector("#signin:not([hidden])");
  const signedOut = { tabsHidden: await page.isHidden("#tabs"), stored: await page.evaluate(() => sessionStorage.getItem("voicepaas")) };
  const deliveries = deliveryRows.length;
  const result = { zone, refused, defaults, ids, cells, bars, legs, outcome, deliveryRows, deliveries, repushed, after, lookup, failed, failedRepush, signedOut, errors };
  console.log(JSON.stringify(result));
  const want = expected.split(",").sort();
  if (JSON.stringify([...ids].sort()) !== JSON.stringify(want) || errors.length) process.exit(1);
} finally {
  await browser.close();
}
