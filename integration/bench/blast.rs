//! `blast`: the benchmark's packet generator (issue 5). It writes
//! Ethernet/IPv4/UDP frames straight onto an interface through an
//! `AF_PACKET` socket with `PACKET_QDISC_BYPASS`, `--batch` frames per
//! sendmmsg(2), so one generator process can offer several hundred thousand
//! small packets per second on one CPU. iperf3 (one UDP send per packet,
//! through the whole socket layer) and hping3 (one packet per call, through
//! libpcap's helpers) were what limited the earlier runs, not the device
//! under test.
//!
//! Two shapes of traffic:
//! - `--flows N` (default): N fixed 5-tuples (source ports `--sport`,
//!   `--sport`+1, ...) to `--dst`, in turn: the small-packet throughput test.
//! - `--new-flows`: every frame a new 5-tuple, to `--dst-net` (a /15 gives
//!   131072 addresses) with the source port stepping after each sweep of the
//!   addresses; no tuple repeats within 8 billion frames. Through PAT each
//!   is a new connection and a new binding: the new-flows test.
//!
//! `--pps R` paces (checked every batch against the monotonic clock);
//! without it, it sends as fast as the socket takes frames. At the end it
//! prints one line: `sent=N seconds=S pps=R errors=E`.
//!
//! Build: `cargo build --release --example blast`; run it as root, inside
//! the sending namespace (`ip netns exec ns blast --iface ...`).

use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser)]
#[command(about = "Send UDP frames onto an interface, fast (twinwall's benchmark generator)")]
struct Args {
    /// Interface to send on (in the current network namespace).
    #[arg(long)]
    iface: String,
    /// Destination MAC (the next hop's); default: looked up in the ARP
    /// table for --gateway, or --dst.
    #[arg(long)]
    dst_mac: Option<String>,
    /// Next hop whose MAC to look up (ping it first so the ARP table has it).
    #[arg(long)]
    gateway: Option<Ipv4Addr>,
    /// Source address.
    #[arg(long)]
    src: Ipv4Addr,
    /// Destination address (fixed flows).
    #[arg(long, default_value = "203.0.113.254")]
    dst: Ipv4Addr,
    /// Destination port.
    #[arg(long, default_value_t = 9)]
    dport: u16,
    /// First source port of the fixed flows.
    #[arg(long, default_value_t = 40000)]
    sport: u16,
    /// UDP payload bytes.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Fixed flows, sent in turn.
    #[arg(long, default_value_t = 1)]
    flows: u16,
    /// A new 5-tuple per frame, destinations in --dst-net.
    #[arg(long)]
    new_flows: bool,
    /// Destination network for --new-flows, as ADDR/LEN.
    #[arg(long, default_value = "198.18.0.0/15")]
    dst_net: String,
    /// Frames per second (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    pps: u64,
    /// How long to send.
    #[arg(long, default_value_t = 8.0)]
    seconds: f64,
    /// Frames per sendmmsg call.
    #[arg(long, default_value_t = 64)]
    batch: usize,
}

const ETH: usize = 14;
const IP: usize = 20;
const UDP: usize = 8;

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("blast: {e}");
        std::process::exit(1);
    }
}

fn run(a: &Args) -> Result<(), String> {
    if a.batch == 0 || a.batch > 1024 {
        return Err("--batch must be 1..1024".into());
    }
    if a.payload > 1472 {
        return Err("--payload at most 1472 bytes (one 1500-byte IP packet)".into());
    }
    let src_mac = read_mac(&format!("/sys/class/net/{}/address", a.iface))?;
    let dst_mac = match &a.dst_mac {
        Some(m) => parse_mac(m).ok_or_else(|| format!("--dst-mac {m}: not a MAC address"))?,
        None => {
            let hop = a.gateway.unwrap_or(a.dst);
            arp_lookup(hop, &a.iface)?
        }
    };
    let (net, len) = parse_net(&a.dst_net)?;
    let net_size: u32 = if len == 0 { u32::MAX } else { 1u32 << (32 - len) };
    let ifindex = ifindex(&a.iface)?;
    let fd = open_socket(ifindex)?;

    let frame_len = ETH + IP + UDP + a.payload;
    let mut frames = vec![0u8; frame_len * a.batch];
    for f in frames.chunks_mut(frame_len) {
        template(f, &src_mac, &dst_mac, a.src, a.payload);
    }
    let mut iov: Vec<libc::iovec> = frames
        .chunks_mut(frame_len)
        .map(|f| libc::iovec { iov_base: f.as_mut_ptr().cast(), iov_len: f.len() })
        .collect();
    // SAFETY: mmsghdr is plain old data; all-zero is a valid value.
    let mut msgs: Vec<libc::mmsghdr> = (0..a.batch).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v as *mut libc::iovec;
        m.msg_hdr.msg_iovlen = 1;
    }

    let start = Instant::now();
    let end = start + Duration::from_secs_f64(a.seconds);
    let (mut seq, mut sent, mut errors) = (0u64, 0u64, 0u64);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let mut n = a.batch;
        if a.pps > 0 {
            let due = (now.duration_since(start).as_secs_f64() * a.pps as f64) as u64;
            let behind = due.saturating_sub(sent) as usize;
            if behind == 0 {
                std::thread::sleep(Duration::from_micros(50));
                continue;
            }
            n = n.min(behind);
        }
        for f in frames.chunks_mut(frame_len).take(n) {
            let (dst, sport) = if a.new_flows {
                let i = seq;
                (
                    Ipv4Addr::from(u32::from(net).wrapping_add((i % net_size as u64) as u32)),
                    1024 + ((i / net_size as u64) % 64512) as u16,
                )
            } else {
                (a.dst, a.sport.wrapping_add((seq % a.flows.max(1) as u64) as u16))
            };
            stamp(f, dst, sport, a.dport, seq as u16);
            seq += 1;
        }
        // SAFETY: `msgs` points at `iov`, which points into `frames`; all
        // live across the call, and sendmmsg only reads them.
        let r = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as libc::c_uint, 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR) => {
                    errors += 1;
                    // Those frames were stamped but not sent: resend the numbers.
                    seq -= n as u64;
                    std::thread::yield_now();
                }
                _ => return Err(format!("sendmmsg on {}: {e}", a.iface)),
            }
        } else {
            sent += r as u64;
            // Frames past `r` were not taken; they go again next round.
            seq -= (n - r as usize) as u64;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("sent={sent} seconds={secs:.3} pps={:.0} errors={errors}", sent as f64 / secs);
    // SAFETY: `fd` is ours and no longer used.
    unsafe { libc::close(fd) };
    Ok(())
}

fn template(f: &mut [u8], src_mac: &[u8; 6], dst_mac: &[u8; 6], src: Ipv4Addr, payload: usize) {
    f[0..6].copy_from_slice(dst_mac);
    f[6..12].copy_from_slice(src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[ETH..ETH + IP];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((IP + UDP + payload) as u16).to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.octets());
    let udp = &mut f[ETH + IP..ETH + IP + UDP];
    udp[4..6].copy_from_slice(&((UDP + payload) as u16).to_be_bytes());
    // UDP checksum 0: none (allowed for IPv4), so only the IP header's changes.
}

fn stamp(f: &mut [u8], dst: Ipv4Addr, sport: u16, dport: u16, id: u16) {
    let ip = &mut f[ETH..ETH + IP];
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    ip[16..20].copy_from_slice(&dst.octets());
    ip[10..12].copy_from_slice(&[0, 0]);
    let mut sum = 0u32;
    for w in ip.chunks(2) {
        sum += u16::from_be_bytes([w[0], w[1]]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let udp = &mut f[ETH + IP..ETH + IP + UDP];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&dport.to_be_bytes());
}

fn open_socket(ifindex: i32) -> Result<i32, String> {
    // Protocol 0: this socket sends only, it is handed no received frames.
    // SAFETY: socket(2) takes no pointers; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(format!("AF_PACKET socket: {} (run as root)", io::Error::last_os_error()));
    }
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex;
    // SAFETY: `sll` is a valid sockaddr_ll of the size passed.
    let r = unsafe {
        libc::bind(fd, &sll as *const libc::sockaddr_ll as *const libc::sockaddr, std::mem::size_of_val(&sll) as u32)
    };
    if r < 0 {
        return Err(format!("bind AF_PACKET socket: {}", io::Error::last_os_error()));
    }
    for (level, opt, val) in [
        (libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1),
        (libc::SOL_SOCKET, libc::SO_SNDBUF, 4 << 20),
    ] {
        // SAFETY: an int option, passed by pointer with its size.
        let r = unsafe {
            libc::setsockopt(fd, level, opt, &val as *const i32 as *const libc::c_void, std::mem::size_of::<i32>() as u32)
        };
        if r < 0 {
            eprintln!("blast: setsockopt({level}, {opt}): {} (going on)", io::Error::last_os_error());
        }
    }
    Ok(fd)
}

fn ifindex(name: &str) -> Result<i32, String> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .map_err(|e| format!("interface {name}: {e}"))?
        .trim()
        .parse()
        .map_err(|e| format!("interface {name}: ifindex: {e}"))
}

fn read_mac(path: &str) -> Result<[u8; 6], String> {
    let s = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    parse_mac(s.trim()).ok_or_else(|| format!("{path}: not a MAC address"))
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in mac.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// The kernel's ARP table (`/proc/net/arp`) entry for `ip` on `iface`.
fn arp_lookup(ip: Ipv4Addr, iface: &str) -> Result<[u8; 6], String> {
    let table = std::fs::read_to_string("/proc/net/arp").map_err(|e| format!("/proc/net/arp: {e}"))?;
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 6 && f[0] == ip.to_string() && f[5] == iface && f[3] != "00:00:00:00:00:00" {
            return parse_mac(f[3]).ok_or_else(|| format!("/proc/net/arp: bad MAC {}", f[3]));
        }
    }
    Err(format!("no ARP entry for {ip} on {iface}: ping it first, or pass --dst-mac"))
}

fn parse_net(s: &str) -> Result<(Ipv4Addr, u32), String> {
    let (a, l) = s.split_once('/').ok_or_else(|| format!("--dst-net {s}: want ADDR/LEN"))?;
    let addr: Ipv4Addr = a.parse().map_err(|_| format!("--dst-net {s}: bad address"))?;
    let len: u32 = l.parse().ok().filter(|l| *l <= 32).ok_or_else(|| format!("--dst-net {s}: bad length"))?;
    Ok((addr, len))
}
