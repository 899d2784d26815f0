//! Reading ONNX TensorProto values (initializers and Constant nodes) without panics:
//! tract's own loader aborts on some data types, and edgefit only needs float
//! weights and integer shapes.

use tract_onnx::pb::{self, tensor_proto::DataType};

/// A constant value: float data (weights) or integers (shapes, axes).
#[derive(Debug, Clone, PartialEq)]
pub enum Constant {
    Float { shape: Vec<usize>, data: Vec<f32> },
    Int { shape: Vec<usize>, data: Vec<i64> },
}

impl Constant {
    pub fn shape(&self) -> &[usize] {
        match self {
            Constant::Float { shape, .. } | Constant::Int { shape, .. } => shape,
        }
    }

    pub fn as_f32(&self) -> Vec<f32> {
        match self {
            Constant::Float { data, .. } => data.clone(),
            Constant::Int { data, .. } => data.iter().map(|&v| v as f32).collect(),
        }
    }
}

pub fn read_constant(t: &pb::TensorProto) -> Result<Constant, String> {
    let shape = t
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| format!("tensor `{}` has a negative dimension {d}", t.name))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or("tensor size overflows")?;
    if t.data_location == Some(pb::tensor_proto::DataLocation::External as i32) {
        return Err(format!(
            "tensor `{}` keeps its data in an external file, which edgefit does not read",
            t.name
        ));
    }
    let dtype = DataType::try_from(t.data_type)
        .map_err(|_| format!("tensor `{}` has unknown data type {}", t.name, t.data_type))?;
    let raw = &t.raw_data;
    let check = |len: usize| {
        if len == count {
            Ok(())
        } else {
            Err(format!(
                "tensor `{}` holds {len} values but its shape {shape:?} needs {count}",
                t.name
            ))
        }
    };
    match dtype {
        DataType::Float => {
            let data: Vec<f32> = if !raw.is_empty() {
                if !raw.len().is_multiple_of(4) {
                    return Err(format!(
                        "tensor `{}` has {} raw bytes, not a whole number of floats",
                        t.name,
                        raw.len()
                    ));
                }
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            } else {
                t.float_data.clone()
            };
            check(data.len())?;
            Ok(Constant::Float { shape, data })
        }
        DataType::Double => {
            let data: Vec<f32> = if !raw.is_empty() {
                if !raw.len().is_multiple_of(8) {
                    return Err(format!(
                        "tensor `{}` has {} raw bytes, not a whole number of doubles",
                        t.name,
                        raw.len()
                    ));
                }
                raw.chunks_exact(8)
                    .map(|c| {
                        f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                    })
                    .collect()
            } else {
                t.double_data.iter().map(|&v| v as f32).collect()
            };
            check(data.len())?;
            Ok(Constant::Float { shape, data })
        }
        DataType::Int64 => {
            let data: Vec<i64> = if !raw.is_empty() {
                raw.chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect()
            } else {
                t.int64_data.clone()
            };
            check(data.len())?;
            Ok(Constant::Int { shape, data })
        }
        DataType::Int32 => {
            let data: Vec<i64> = if !raw.is_empty() {
                raw.chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                    .collect()
            } else {
                t.int32_data.iter().map(|&v| v as i64).collect()
            };
            check(data.len())?;
            Ok(Constant::Int { shape, data })
        }
        other => Err(format!(
            "tensor `{}` has data type {other:?}; edgefit reads weights and constants of type \
             FLOAT, DOUBLE, INT64 and INT32",
            t.name
        )),
    }
}

/// Static shape of a graph input/output value, `None` for a symbolic dimension.
pub fn value_shape(v: &pb::ValueInfoProto) -> Option<Vec<Option<usize>>> {
    use pb::tensor_shape_proto::dimension::Value;
    let pb::type_proto::Value::TensorType(t) = v.r#type.as_ref()?.value.as_ref()?;
    let shape = t.shape.as_ref()?;
    Some(
        shape
            .dim
            .iter()
            .map(|d| match &d.value {
                // A declared 0 (or negative) stays visible as 0, never read as symbolic.
                Some(Value::DimValue(v)) => Some((*v).max(0) as usize),
                _ => None,
            })
            .collect(),
    )
}

/// The element type a value declares (`TensorProto.DataType` code), if any.
pub fn value_elem_type(v: &pb::ValueInfoProto) -> Option<i32> {
    let pb::type_proto::Value::TensorType(t) = v.r#type.as_ref()?.value.as_ref()?;
    Some(t.elem_type)
}
