//! Byte links to a device: a serial port (a board's UART, via `serialport`) or
//! a TCP socket (QEMU's emulated UART, the Linux agent).

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::str::FromStr;
use std::time::Duration;

/// Where a device is reached: `serial:/dev/ttyACM0[@115200]` or `tcp:HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Port {
    Serial { path: String, baud: u32 },
    Tcp { host: String, port: u16 },
}

/// Baud rate when `serial:PATH` names none.
pub const DEFAULT_BAUD: u32 = 115_200;

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("port `{0}`: expected serial:/dev/ttyX[@baud] or tcp:HOST:PORT")]
    Syntax(String),
    #[error("port `{spec}`: bad {what} `{value}`")]
    Number {
        spec: String,
        what: &'static str,
        value: String,
    },
}

impl FromStr for Port {
    type Err = PortError;

    fn from_str(spec: &str) -> Result<Port, PortError> {
        let number = |what: &'static str, value: &str| PortError::Number {
            spec: spec.to_owned(),
            what,
            value: value.to_owned(),
        };
        if let Some(rest) = spec.strip_prefix("serial:") {
            let (path, baud) = match rest.rsplit_once('@') {
                Some((path, baud)) => (path, baud.parse().map_err(|_| number("baud rate", baud))?),
                None => (rest, DEFAULT_BAUD),
            };
            if path.is_empty() {
                return Err(PortError::Syntax(spec.to_owned()));
            }
            return Ok(Port::Serial {
                path: path.to_owned(),
                baud,
            });
        }
        if let Some(rest) = spec.strip_prefix("tcp:") {
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| PortError::Syntax(spec.to_owned()))?;
            let port = port.parse().map_err(|_| number("TCP port", port))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(PortError::Syntax(spec.to_owned()));
            }
            return Ok(Port::Tcp {
                host: host.to_owned(),
                port,
            });
        }
        Err(PortError::Syntax(spec.to_owned()))
    }
}

impl std::fmt::Display for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Port::Serial { path, baud } => write!(f, "serial:{path}@{baud}"),
            Port::Tcp { host, port } if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Port::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
        }
    }
}

/// A bidirectional byte stream with a read timeout: a read that times out
/// returns `ErrorKind::TimedOut` or `WouldBlock`, a closed link `Ok(0)`.
pub trait Link: Read + Write + Send {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()>;
}

impl Link for TcpStream {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        TcpStream::set_read_timeout(self, Some(timeout))
    }
}

struct Serial(Box<dyn serialport::SerialPort>);

impl Read for Serial {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Serial {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Link for Serial {
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.0.set_timeout(timeout).map_err(io::Error::other)
    }
}

/// Opens `port`; `connect_timeout` bounds the TCP connect.
pub fn open(port: &Port, connect_timeout: Duration) -> io::Result<Box<dyn Link>> {
    match port {
        Port::Tcp { host, port } => {
            let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
            for addr in (host.as_str(), *port).to_socket_addrs()? {
                match TcpStream::connect_timeout(&addr, connect_timeout) {
                    Ok(stream) => {
                        // Stop-and-wait frames: send each one at once.
                        stream.set_nodelay(true)?;
                        return Ok(Box::new(stream));
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        }
        Port::Serial { path, baud } => {
            let port = serialport::new(path, *baud)
                .timeout(connect_timeout)
                .open()
                .map_err(io::Error::other)?;
            Ok(Box::new(Serial(port)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ports() {
        assert_eq!(
            "serial:/dev/ttyACM0".parse::<Port>().unwrap(),
            Port::Serial {
                path: "/dev/ttyACM0".into(),
                baud: DEFAULT_BAUD
            }
        );
        assert_eq!(
            "serial:/dev/ttyUSB1@1000000".parse::<Port>().unwrap(),
            Port::Serial {
                path: "/dev/ttyUSB1".into(),
                baud: 1_000_000
            }
        );
        assert_eq!(
            "tcp:127.0.0.1:4444".parse::<Port>().unwrap(),
            Port::Tcp {
                host: "127.0.0.1".into(),
                port: 4444
            }
        );
        assert_eq!(
            "tcp:[::1]:7".parse::<Port>().unwrap().to_string(),
            "tcp:[::1]:7"
        );
        for bad in [
            "",
            "com3",
            "tcp:host",
            "tcp::80",
            "tcp:h:99999",
            "serial:",
            "serial:/x@fast",
        ] {
            assert!(bad.parse::<Port>().is_err(), "{bad}");
        }
    }
}
