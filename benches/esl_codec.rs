//! Events parsed per second from a realistic Event Socket stream: framing (`Decoder`) and
//! `text/event-plain` parsing with url-decoding (`Event::parse_plain`), on one core.
//!
//! Run: `cargo bench --bench esl_codec`. The stream is a call recorded from a real
//! FreeSWITCH 1.10.12 (`fixtures/freeswitch-call.s2c.raw`, the transcript
//! `10-loopback-9664-park-kill`: 52 events, 2.3 KB each on average, with replies between
//! them), repeated, fed to the decoder in 64 KiB reads. Each event is read the way the
//! client and the orchestrator read it: its name and channel uuid, and for a hangup its
//! cause and billsec (values are decoded when they are read).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use voicepaas::esl::Event;
use voicepaas::esl::codec::{Decoder, Direction};

const RECORDED: &[u8] = include_bytes!("fixtures/freeswitch-call.s2c.raw");

fn parse(c: &mut Criterion) {
    let bytes: Vec<u8> = RECORDED.repeat(200);
    let events = {
        let mut decoder = Decoder::new(Direction::FromServer);
        decoder.feed(RECORDED);
        std::iter::from_fn(|| decoder.next_message().ok().flatten())
            .filter(|m| m.content_type() == "text/event-plain")
            .count()
            * 200
    };
    let mut group = c.benchmark_group("esl_codec");
    group.throughput(Throughput::Elements(events as u64));
    group.bench_function("frame_and_parse_events", |b| {
        b.iter(|| {
            let mut decoder = Decoder::new(Direction::FromServer);
            let (mut parsed, mut seen) = (0, 0);
            for chunk in bytes.chunks(64 * 1024) {
                decoder.feed(chunk);
                while let Ok(Some(message)) = decoder.next_message() {
                    if message.content_type() == "text/event-plain" {
                        let event = Event::parse_plain_owned(message.body.unwrap_or_default());
                        parsed += usize::from(!event.name().is_empty());
                        seen += event.unique_id().map_or(0, str::len);
                        if event.name() == "CHANNEL_HANGUP_COMPLETE" {
                            seen += event.hangup_cause().map_or(0, str::len)
                                + event.variable_i64("billsec").unwrap_or(0) as usize;
                        }
                    }
                }
            }
            assert_eq!(parsed, events);
            std::hint::black_box(seen);
        })
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
