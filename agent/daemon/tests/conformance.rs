//! The protocol scenarios every device runs (`edgefit-conformance`), here
//! against the agent: a real listener on a loopback TCP socket, its
//! artifact store in a fresh folder.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use edgefit_agent::{Agent, AgentConfig};
use edgefit_conformance::{split_frames, Target};

/// A connection to a fresh agent (its serving thread ends with the test
/// process).
struct AgentTarget {
    stream: TcpStream,
    _store: tempfile::TempDir,
}

fn fresh() -> AgentTarget {
    let store = tempfile::tempdir().expect("a temporary folder");
    let listen = "127.0.0.1:0".parse().expect("an address");
    let agent = Agent::bind(AgentConfig::new(listen, store.path().join("store")))
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = agent.local_addr().expect("a bound address");
    agent.spawn();
    let stream = TcpStream::connect(addr).expect("the agent accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a timeout");
    AgentTarget {
        stream,
        _store: store,
    }
}

impl Target for AgentTarget {
    fn exchange(&mut self, bytes: &[u8], frames: usize) -> Vec<Vec<u8>> {
        self.stream.write_all(bytes).expect("the agent reads");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        // Every answer ends in the delimiter; a device that answers fewer
        // frames than expected fails on the read timeout.
        while got.iter().filter(|&&b| b == 0).count() < frames {
            let n = self
                .stream
                .read(&mut buf)
                .unwrap_or_else(|e| panic!("waiting for {frames} answers: {e}"));
            assert!(n > 0, "the agent closed the connection");
            got.extend_from_slice(&buf[..n]);
        }
        let out = split_frames(&got);
        assert_eq!(out.len(), frames, "answers to {} bytes", bytes.len());
        out
    }
}

edgefit_conformance::conformance_tests!(fresh());
