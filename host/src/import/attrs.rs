//! ONNX node attributes by name: the one lookup the importer and the pruners
//! use (`import::lower`, `prune::channels`, `prune::magnitude`).

use tract_onnx::pb;

/// A node's attributes. A missing attribute is `None` (the caller applies
/// ONNX's default, e.g. `attrs.int("group").unwrap_or(1)`).
#[derive(Debug, Clone, Copy)]
pub struct Attrs<'a> {
    pub node: &'a pb::NodeProto,
}

impl<'a> Attrs<'a> {
    pub fn of(node: &'a pb::NodeProto) -> Self {
        Self { node }
    }

    fn find(&self, name: &str) -> Option<&'a pb::AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    pub fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.find(name).map(|a| a.ints.clone())
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        self.find(name).map(|a| a.i)
    }

    pub fn float(&self, name: &str) -> Option<f32> {
        self.find(name).map(|a| a.f)
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.find(name)
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }

    pub fn tensor(&self, name: &str) -> Option<&'a pb::TensorProto> {
        self.find(name).and_then(|a| a.t.as_ref())
    }
}
