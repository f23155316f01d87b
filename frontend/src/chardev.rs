//! QEMU's `-chardev BACKEND,id=ID[,path=…]`: named character backends that `-serial
//! chardev:ID`, `-debugcon chardev:ID` and `-device …,chardev=ID` refer to.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::serial::SerialSpec;
use crate::socket::SocketSpec;
use crate::values::split_props;

/// The `-chardev`s of a command line, by id.
#[derive(Debug, Default)]
pub struct Chardevs {
    specs: HashMap<String, SerialSpec>,
    /// Which option took each id: a backend serves one device (QEMU's rule, without mux).
    used: RefCell<HashMap<String, String>>,
}

impl Chardevs {
    /// Parses every `-chardev` argument; the second item holds warnings.
    pub fn parse(specs: &[String]) -> Result<(Self, Vec<String>), String> {
        let mut map = HashMap::new();
        let mut warnings = Vec::new();
        for spec in specs {
            let (id, backend, w) = parse_one(spec)?;
            warnings.extend(w);
            if map.insert(id.clone(), backend).is_some() {
                return Err(format!("-chardev: duplicate id '{id}'"));
            }
        }
        Ok((
            Chardevs {
                specs: map,
                used: RefCell::default(),
            },
            warnings,
        ))
    }

    /// The backend `id` names, for the option `user` (named in error messages); each backend
    /// serves one user.
    pub fn get(&self, user: &str, id: &str) -> Result<SerialSpec, String> {
        let spec = self
            .specs
            .get(id)
            .cloned()
            .ok_or_else(|| format!("{user}: no -chardev with id={id}"))?;
        if let Some(first) = self
            .used
            .borrow_mut()
            .insert(id.to_owned(), user.to_owned())
        {
            return Err(format!(
                "{user}: -chardev id={id} is already used by {first} (one device per backend)"
            ));
        }
        Ok(spec)
    }
}

fn parse_one(spec: &str) -> Result<(String, SerialSpec, Vec<String>), String> {
    let mut props = split_props(spec);
    if props.is_empty() || props[0].contains('=') {
        return Err(format!(
            "-chardev '{spec}': no backend named (file, socket, stdio, null)"
        ));
    }
    let backend = props.remove(0);
    let (mut id, mut path, mut warnings) = (None, None, Vec::new());
    let mut socket_props = Vec::new();
    for p in props {
        let (key, value) = p.split_once('=').unwrap_or((&p, ""));
        if backend == "socket" && key != "id" && !matches!(key, "signal" | "mux" | "append") {
            socket_props.push((key.to_owned(), value.to_owned()));
            continue;
        }
        match p.split_once('=') {
            Some(("id", v)) => id = Some(v.to_owned()),
            Some(("path", v)) => path = Some(v.to_owned()),
            // Terminal and multiplexing details that change nothing here.
            Some(("signal" | "mux" | "append", _)) => {
                warnings.push(format!("-chardev {backend}: '{p}' is ignored"))
            }
            _ => return Err(format!("-chardev {backend}: unknown property '{p}'")),
        }
    }
    let id = id.ok_or_else(|| format!("-chardev '{spec}': needs id=NAME"))?;
    let spec = match backend.as_str() {
        "stdio" => SerialSpec::Stdio,
        "null" => SerialSpec::Null,
        "socket" => SerialSpec::Socket(
            SocketSpec::from_props(&socket_props)
                .map_err(|e| format!("-chardev socket,id={id}: {e}"))?,
        ),
        "file" => match path {
            Some(p) if !p.is_empty() => SerialSpec::File(p.into()),
            _ => return Err(format!("-chardev file,id={id}: needs path=FILE")),
        },
        other => {
            return Err(format!(
                "-chardev {other}: backend not supported (use file, socket, stdio or null)"
            ))
        }
    };
    Ok((id, spec, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(specs: &[&str]) -> Result<Chardevs, String> {
        let v: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
        Chardevs::parse(&v).map(|(c, _)| c)
    }

    #[test]
    fn backends_by_id() {
        let c = parse(&[
            "file,id=log,path=/tmp/x",
            "stdio,id=con,signal=off",
            "null,id=n",
        ])
        .unwrap();
        assert_eq!(c.get("t", "log"), Ok(SerialSpec::File("/tmp/x".into())));
        assert_eq!(c.get("t", "con"), Ok(SerialSpec::Stdio));
        assert_eq!(c.get("t", "n"), Ok(SerialSpec::Null));
        assert!(c
            .get("-serial chardev:x", "x")
            .unwrap_err()
            .contains("id=x"));
        assert!(c
            .get("-debugcon chardev:n", "n")
            .unwrap_err()
            .contains("already used by t"));
    }

    #[test]
    fn bad_chardevs_are_named() {
        assert!(matches!(
            parse(&["socket,id=s,port=4444"]).unwrap().get("t", "s"),
            Ok(SerialSpec::Socket(_))
        ));
        assert!(parse(&["socket,id=s"]).unwrap_err().contains("path="));
        assert!(parse(&["pty,id=p"]).unwrap_err().contains("pty"));
        assert!(parse(&["file,id=f"]).unwrap_err().contains("path"));
        assert!(parse(&["stdio"]).unwrap_err().contains("id="));
        assert!(parse(&["null,id=a", "null,id=a"])
            .unwrap_err()
            .contains("duplicate"));
        assert!(parse(&["null,id=a,colour=red"])
            .unwrap_err()
            .contains("colour"));
    }
}
