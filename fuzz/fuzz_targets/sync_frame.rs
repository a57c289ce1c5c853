//! Arbitrary bytes into the sync datagram decoders: header view and repr,
//! section and record iterators, hello payload, and the sealed-datagram
//! opener. None of them may panic.
//!
//! Run: `cd fuzz && cargo +nightly fuzz run sync_frame -- -max_total_time=60`
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinwall::ha::crypto::{Channel, KeyMaterial};
use twinwall::ha::hello::HelloRepr;
use twinwall::ha::wire::{HeaderRepr, Packet, Sections, HEADER_LEN};
use twinwall::ha::{datagram, Unit};

fuzz_target!(|data: &[u8]| {
    // As a whole datagram.
    if let Ok(p) = Packet::new_checked(data) {
        let _ = HeaderRepr::parse(&p);
        let _ = (p.seq(), p.ack(), p.counter(), p.key_id(), p.config_hash(), p.epoch(), p.payload().len());
    }
    // As a decrypted body: every section and record, counted.
    let mut records = 0usize;
    for section in Sections::new(data) {
        let Ok(section) = section else { break };
        for record in section.records() {
            let Ok(r) = record else { break };
            records += r.bytes.len() + usize::from(r.op().is_some());
        }
    }
    std::hint::black_box(records);
    // As a hello payload, also after a header.
    let _ = HelloRepr::parse(data);
    if data.len() > HEADER_LEN {
        let _ = HelloRepr::parse(&data[HEADER_LEN..]);
    }
    // Through the opener: the tag fails, but nothing before it may panic.
    thread_local! {
        static KEY: KeyMaterial = KeyMaterial::from_key_text(&"5a".repeat(32)).expect("valid key");
    }
    KEY.with(|k| {
        let mut buf = data.to_vec();
        let channel = datagram::peek_kind(&buf).map(datagram::channel_of).unwrap_or(Channel::Delta);
        let mut opener = k.opener(Unit::Secondary, channel);
        let _ = datagram::open(&mut opener, channel, Unit::Secondary, k.key_id(), &mut buf);
        let id = Packet::new_checked(&buf[..]).map(|p| p.key_id()).unwrap_or(0);
        let _ = datagram::open(&mut opener, channel, Unit::Secondary, id, &mut buf);
    });
});
