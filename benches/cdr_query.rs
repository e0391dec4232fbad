//! A CDR time-range page on a large PostgreSQL table, through the same query the API
//! runs (`Store::cdr_page`): fills a schema of its own with `CDR_ROWS` CDRs (default 10
//! million; 10 accounts, 30 days, kinds and callees mixed), then times 2,000 pages of 100
//! at random start times, half of them filtered by kind or callee, and a walk of 50 pages
//! with the cursor.
//!
//! `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench cdr_query`

use std::time::Instant;

use voicepaas::store::Store;
use voicepaas::store::cdrs::CdrQuery;

const ACCOUNTS: i64 = 10;
const DAY_MS: i64 = 86_400_000;
const SPAN_MS: i64 = 30 * DAY_MS;
const START: i64 = 1_790_000_000_000;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A small deterministic generator (no extra dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: i64) -> i64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % below as u64) as i64
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL=postgres://…");
    let rows: i64 = std::env::var("CDR_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let admin = sqlx::PgPool::connect(&base).await.expect("PostgreSQL");
    let schema = format!("cdrbench_{rows}");
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = $1)",
    )
    .bind(&schema)
    .fetch_one(&admin)
    .await
    .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options[search_path]={schema}");
    if !exists {
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .unwrap();
        Store::open(&url).await.expect("migrate");
        let fill = Instant::now();
        let body = r#"{"requestid":"RQ10000202611210000000000000000001","callid":"CA10000202611210000000000000000002","appid":"0123456789abcdef0123456789abcdef","to":"13800138000","starttime":"20261121000000","ringtime":"20261121000001","answertime":"20261121000002","endtime":"20261121000032","duration":"30","result":"0","reason":"","userdata":"order-42","inputkey":"1"}"#;
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let chunk = 1_000_000;
        let mut done = 0;
        while done < rows {
            let n = chunk.min(rows - done);
            sqlx::query(
                "INSERT INTO cdrs (id, account_sid, app_id, kind, start_time, to_number, body, created_at) \
                 SELECT 'CA' || lpad(g::text, 32, '0'), 'acct' || (g % $1), 'app' || (g % 37), \
                        (ARRAY['notice','captcha','click2call'])[1 + g % 3], \
                        $2 + (hashint8(g) % $3 + $3) % $3, '138' || lpad((g % 100000)::text, 8, '0'), $4, 0 \
                 FROM generate_series($5::bigint, $6::bigint) AS g",
            )
            .bind(ACCOUNTS)
            .bind(START)
            .bind(SPAN_MS)
            .bind(body)
            .bind(done)
            .bind(done + n - 1)
            .execute(&pool)
            .await
            .expect("fill");
            done += n;
            eprintln!("{done} rows");
        }
        // The callee filter reads cdr_numbers (every leg's number; one per notice here).
        sqlx::query(
            "INSERT INTO cdr_numbers (account_sid, number, start_time, cdr_id) \
             SELECT account_sid, to_number, start_time, id FROM cdrs",
        )
        .execute(&pool)
        .await
        .expect("fill cdr_numbers");
        sqlx::query("ANALYZE cdrs").execute(&pool).await.unwrap();
        println!(
            "filled {rows} rows in {:.0} s",
            fill.elapsed().as_secs_f64()
        );
    }
    let store = Store::open(&url).await.expect("store");
    let mut rng = Lcg(42);
    let mut plain = Vec::new();
    let mut filtered = Vec::new();
    for i in 0..2000 {
        let account = format!("acct{}", rng.next(ACCOUNTS));
        let from = START + rng.next(SPAN_MS - DAY_MS);
        let mut query = CdrQuery {
            from,
            to: from + DAY_MS,
            ..Default::default()
        };
        if i % 2 == 1 {
            if i % 4 == 1 {
                query.kind = Some("captcha".into());
            } else {
                query.to_number = Some(format!("138{:08}", rng.next(100_000)));
                query.to = from + 10 * DAY_MS;
            }
        }
        let t = Instant::now();
        let page = store
            .cdr_page(&account, &query, None, 101)
            .await
            .expect("page");
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        assert!(!page.is_empty() || query.to_number.is_some());
        if i % 2 == 0 {
            plain.push(ms)
        } else {
            filtered.push(ms)
        }
    }
    // Paging deep with the cursor.
    let mut walk = Vec::new();
    let mut after = None;
    let query = CdrQuery {
        from: START,
        to: START + SPAN_MS,
        ..Default::default()
    };
    for _ in 0..50 {
        let t = Instant::now();
        let page = store
            .cdr_page("acct3", &query, after.clone(), 101)
            .await
            .expect("page");
        walk.push(t.elapsed().as_secs_f64() * 1000.0);
        let last = &page[99];
        after = Some((last.start_time, last.id.clone()));
    }
    for (name, mut v) in [
        ("range page", plain),
        ("range page, kind or callee filter", filtered),
        ("cursor walk, 50 pages", walk),
    ] {
        v.sort_by(f64::total_cmp);
        println!(
            "{name}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} queries)",
            percentile(&v, 0.5),
            percentile(&v, 0.99),
            v[v.len() - 1],
            v.len()
        );
    }
}
