//! Shapes: Flatten, Reshape, Transpose (views or copies), and the shape arithmetic of
//! dynamic-batch exports (Shape, Gather, Unsqueeze, Squeeze, Concat, Cast), folded to constants.

use super::*;

impl Lowering {
    /// Flatten and Reshape: views or copies (layout.rs decides).
    pub(super) fn lower_reshape(&mut self, cx: &NodeCx<'_>) -> Result<(), ImportError> {
        let op = cx.op;
        let name = cx.name.clone();
        let out_name = cx.out_name.clone();
        let x = cx.act(0)?;
        let shape = self.in_shape(cx, 0)?;
        let total: usize = shape.iter().product();
        let new_shape = if op == "Flatten" {
            let axis = cx.attrs.int("axis").unwrap_or(1);
            let axis = if axis < 0 {
                axis + shape.len() as i64
            } else {
                axis
            };
            if axis < 0 || axis as usize > shape.len() {
                return Err(cx.err(format!("axis {axis} out of range for shape {shape:?}")));
            }
            let outer: usize = shape[..axis as usize].iter().product();
            vec![outer, total / outer.max(1)]
        } else {
            let target = match cx.inputs.get(1) {
                Some(Some(Value::Const(Constant::Int { data, .. }))) => data.clone(),
                _ => {
                    return Err(cx.err("the target shape must be a constant integer tensor".into()))
                }
            };
            reshape_target(&shape, &target, cx.attrs.int("allowzero").unwrap_or(0) != 0)
                .map_err(|r| cx.err(r))?
        };
        if new_shape.iter().product::<usize>() != total {
            return Err(cx.err(format!("cannot reshape {shape:?} into {new_shape:?}")));
        }
        let out = self.add_tensor(&out_name, new_shape);
        self.push(name, Op::Reshape, vec![x], out, 0);
        Ok(())
    }

    /// Transpose of activations.
    pub(super) fn lower_transpose(&mut self, cx: &NodeCx<'_>) -> Result<(), ImportError> {
        let name = cx.name.clone();
        let out_name = cx.out_name.clone();
        let x = cx.act(0)?;
        let shape = self.in_shape(cx, 0)?;
        let perm: Vec<usize> = match cx.attrs.ints("perm") {
            // The default reverses the axes.
            None => (0..shape.len()).rev().collect(),
            Some(p) => {
                let mut seen = vec![false; shape.len()];
                let mut perm = Vec::with_capacity(p.len());
                for &a in &p {
                    let a = usize::try_from(a)
                        .ok()
                        .filter(|&a| a < shape.len() && !seen[a])
                        .ok_or_else(|| {
                            cx.err(format!(
                                "perm {p:?} is not a permutation of the {} axes of {shape:?}",
                                shape.len()
                            ))
                        })?;
                    seen[a] = true;
                    perm.push(a);
                }
                if perm.len() != shape.len() {
                    return Err(cx.err(format!(
                        "perm {p:?} is not a permutation of the {} axes of {shape:?}",
                        shape.len()
                    )));
                }
                perm
            }
        };
        let out_shape = perm.iter().map(|&a| shape[a]).collect();
        let out = self.add_tensor(&out_name, out_shape);
        self.push(name, Op::Transpose { perm }, vec![x], out, 0);
        Ok(())
    }

    /// Shape: every shape is static, so it folds to a constant.
    // Shape arithmetic: every shape is static, so these fold to constants
    // (`x.view(x.size(0), -1)` with a dynamic batch exports as
    // Shape -> Gather -> Unsqueeze -> Concat -> Reshape).
    pub(super) fn lower_shape(&mut self, cx: &NodeCx<'_>) -> Result<(), ImportError> {
        let out_name = cx.out_name.clone();
        let shape: Vec<usize> = match cx.inputs.first() {
            Some(Some(Value::Activation(id))) => self.tensors[*id].shape.clone(),
            Some(Some(Value::Const(c))) => c.shape().to_vec(),
            Some(Some(Value::Param(p))) => p.shape.clone(),
            _ => return Err(cx.err("input 0 is missing".into())),
        };
        let rank = shape.len() as i64;
        let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
        let start = clamp(cx.attrs.int("start").unwrap_or(0));
        let end = clamp(cx.attrs.int("end").unwrap_or(rank));
        let data: Vec<i64> = shape[start..end.max(start)]
            .iter()
            .map(|&d| d as i64)
            .collect();
        let c = Constant::Int {
            shape: vec![data.len()],
            data,
        };
        self.values.insert(out_name, Value::Const(c));
        Ok(())
    }

    /// Gather, Unsqueeze, Squeeze, Concat and Cast on constants: folded.
    pub(super) fn lower_folded(&mut self, cx: &NodeCx<'_>) -> Result<(), ImportError> {
        let op = cx.op;
        let out_name = cx.out_name.clone();
        let consts: Vec<Option<&Constant>> = cx
            .inputs
            .iter()
            .map(|v| match v {
                Some(Value::Const(c)) => Some(c),
                _ => None,
            })
            .collect();
        let c = fold_constant(op, &consts, &cx.attrs, self.opset).map_err(|r| cx.err(r))?;
        self.values.insert(out_name, Value::Const(c));
        Ok(())
    }

    /// Unsqueeze and Squeeze of activations: views.
    pub(super) fn lower_squeeze(&mut self, cx: &NodeCx<'_>) -> Result<(), ImportError> {
        let op = cx.op;
        let name = cx.name.clone();
        let out_name = cx.out_name.clone();
        let x = cx.act(0)?;
        let shape = self.in_shape(cx, 0)?;
        let axes = match (cx.attrs.ints("axes"), cx.inputs.get(1)) {
            (Some(a), _) => Some(a),
            (None, Some(Some(Value::Const(Constant::Int { data, .. })))) => Some(data.clone()),
            (None, None | Some(None)) => None,
            (None, Some(Some(_))) => {
                return Err(cx.err("axes must be a constant integer tensor".into()))
            }
        };
        let new_shape = if op == "Unsqueeze" {
            unsqueeze_shape(&shape, &axes.unwrap_or_default())
        } else {
            squeeze_shape(&shape, axes.as_deref())
        }
        .map_err(|r| cx.err(r))?;
        let out = self.add_tensor(&out_name, new_shape);
        self.push(name, Op::Reshape, vec![x], out, 0);
        Ok(())
    }

    /// Gather, Concat and Cast of activations: refused.
    pub(super) fn lower_gather_concat_cast(&mut self, cx: &NodeCx<'_>) -> Result<(), ImportError> {
        let op = cx.op;
        Err(cx.err(format!(
            "{op} of a computed tensor: edgefit folds {op} only on constants (shape \
             arithmetic); the engine has no {op} kernel"
        )))
    }
}

/// `Gather`, `Unsqueeze`, `Squeeze`, `Concat` and `Cast` over constants (the
/// shape arithmetic exporters write).
pub(super) fn fold_constant(
    op: &str,
    inputs: &[Option<&Constant>],
    attrs: &Attrs,
    opset: i64,
) -> Result<Constant, String> {
    let input = |i: usize| -> Result<&Constant, String> {
        inputs
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| format!("input {i} is missing"))
    };
    let ints = |c: &Constant| -> Result<Vec<i64>, String> {
        match c {
            Constant::Int { data, .. } => Ok(data.clone()),
            Constant::Float { .. } => Err("expected an integer tensor".into()),
        }
    };
    // Axes from the attribute (before opset 13) or the second input.
    let axes = || -> Result<Option<Vec<i64>>, String> {
        match attrs.ints("axes") {
            Some(a) => Ok(Some(a)),
            None => inputs.get(1).copied().flatten().map(ints).transpose(),
        }
    };
    let reshaped = |c: &Constant, shape: Vec<usize>| match c {
        Constant::Int { data, .. } => Constant::Int {
            shape,
            data: data.clone(),
        },
        Constant::Float { data, .. } => Constant::Float {
            shape,
            data: data.clone(),
        },
    };
    match op {
        "Unsqueeze" => {
            let x = input(0)?;
            let axes = axes()?.ok_or("Unsqueeze needs axes")?;
            Ok(reshaped(x, unsqueeze_shape(x.shape(), &axes)?))
        }
        "Squeeze" => {
            let x = input(0)?;
            Ok(reshaped(x, squeeze_shape(x.shape(), axes()?.as_deref())?))
        }
        "Cast" => {
            let x = input(0)?;
            let to = attrs.int("to").ok_or("Cast needs `to`")?;
            let shape = x.shape().to_vec();
            // FLOAT; INT8..INT64 and UINT8..UINT64 (ONNX DataType codes).
            match to {
                1 => Ok(Constant::Float {
                    shape,
                    data: x.as_f32(),
                }),
                2..=7 | 12 | 13 => Ok(Constant::Int {
                    shape,
                    data: match x {
                        Constant::Int { data, .. } => data.clone(),
                        Constant::Float { data, .. } => {
                            data.iter().map(|&v| v.trunc() as i64).collect()
                        }
                    },
                }),
                _ => Err(format!(
                    "Cast to data type {to}: edgefit folds casts to float and integer types only"
                )),
            }
        }
        "Gather" => {
            let (x, idx) = (input(0)?, input(1)?);
            let indices = ints(idx)?;
            let shape = x.shape();
            let rank = shape.len() as i64;
            let axis = attrs.int("axis").unwrap_or(0);
            let axis = if axis < 0 { axis + rank } else { axis };
            if !(0..rank).contains(&axis) {
                return Err(format!("axis {axis} out of range for {shape:?}"));
            }
            let axis = axis as usize;
            let (outer, dim): (usize, usize) = (shape[..axis].iter().product(), shape[axis]);
            let inner: usize = shape[axis + 1..].iter().product();
            let picks = indices
                .iter()
                .map(|&i| {
                    let j = if i < 0 { i + dim as i64 } else { i };
                    usize::try_from(j)
                        .ok()
                        .filter(|&j| j < dim)
                        .ok_or_else(|| format!("index {i} out of range for dimension {dim}"))
                })
                .collect::<Result<Vec<usize>, _>>()?;
            // Source positions of the output's elements, in order.
            let positions = (0..outer).flat_map(|o| {
                picks
                    .iter()
                    .flat_map(move |&p| (0..inner).map(move |k| (o * dim + p) * inner + k))
            });
            let mut out_shape = shape[..axis].to_vec();
            out_shape.extend_from_slice(idx.shape());
            out_shape.extend_from_slice(&shape[axis + 1..]);
            Ok(match x {
                Constant::Int { data, .. } => Constant::Int {
                    shape: out_shape,
                    data: positions.map(|i| data[i]).collect(),
                },
                Constant::Float { data, .. } => Constant::Float {
                    shape: out_shape,
                    data: positions.map(|i| data[i]).collect(),
                },
            })
        }
        "Concat" => {
            let parts: Vec<&Constant> = inputs.iter().flatten().copied().collect();
            let first = parts.first().ok_or("Concat needs inputs")?;
            let rank = first.shape().len() as i64;
            let axis = attrs.int("axis").ok_or("Concat needs `axis`")?;
            let axis = if axis < 0 { axis + rank } else { axis };
            if !(0..rank).contains(&axis) {
                return Err(format!("axis {axis} out of range for {:?}", first.shape()));
            }
            let axis = axis as usize;
            let mut out_shape = first.shape().to_vec();
            out_shape[axis] = 0;
            for p in &parts {
                let s = p.shape();
                if s.len() != first.shape().len()
                    || s.iter()
                        .zip(first.shape())
                        .enumerate()
                        .any(|(i, (a, b))| i != axis && a != b)
                {
                    return Err(format!(
                        "inputs of shapes {:?} and {s:?} do not concatenate on axis {axis}",
                        first.shape()
                    ));
                }
                out_shape[axis] += s[axis];
            }
            let outer: usize = out_shape[..axis].iter().product();
            let all_int = parts.iter().all(|p| matches!(p, Constant::Int { .. }));
            let chunk = |p: &Constant, o: usize| -> (usize, usize) {
                let n: usize = p.shape()[axis..].iter().product();
                (o * n, (o + 1) * n)
            };
            if all_int {
                let mut data = Vec::new();
                for o in 0..outer {
                    for p in &parts {
                        let (a, b) = chunk(p, o);
                        data.extend_from_slice(&ints(p)?[a..b]);
                    }
                }
                Ok(Constant::Int {
                    shape: out_shape,
                    data,
                })
            } else {
                let mut data = Vec::new();
                for o in 0..outer {
                    for p in &parts {
                        let (a, b) = chunk(p, o);
                        data.extend_from_slice(&p.as_f32()[a..b]);
                    }
                }
                Ok(Constant::Float {
                    shape: out_shape,
                    data,
                })
            }
        }
        _ => Err(format!("{op} does not fold (opset {opset})")),
    }
}

/// ONNX Unsqueeze: `axes` index the output.
pub(super) fn unsqueeze_shape(shape: &[usize], axes: &[i64]) -> Result<Vec<usize>, String> {
    let rank = (shape.len() + axes.len()) as i64;
    let mut at = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = if a < 0 { a + rank } else { a };
        if !(0..rank).contains(&n) || at.contains(&(n as usize)) {
            return Err(format!("axes {axes:?} are not valid for {shape:?}"));
        }
        at.push(n as usize);
    }
    let mut dims = shape.iter();
    Ok((0..rank as usize)
        .map(|i| {
            if at.contains(&i) {
                1
            } else {
                dims.next().copied().unwrap_or(1)
            }
        })
        .collect())
}

/// ONNX Squeeze: the given axes (each of size 1), or every axis of size 1.
pub(super) fn squeeze_shape(shape: &[usize], axes: Option<&[i64]>) -> Result<Vec<usize>, String> {
    let rank = shape.len() as i64;
    let drop: Vec<usize> = match axes {
        None => (0..shape.len()).filter(|&i| shape[i] == 1).collect(),
        Some(axes) => axes
            .iter()
            .map(|&a| {
                let n = if a < 0 { a + rank } else { a };
                usize::try_from(n)
                    .ok()
                    .filter(|&n| n < shape.len() && shape[n] == 1)
                    .ok_or_else(|| {
                        format!("axis {a} of {shape:?} is out of range or not of size 1")
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok((0..shape.len())
        .filter(|i| !drop.contains(i))
        .map(|i| shape[i])
        .collect())
}

pub(super) fn reshape_target(
    shape: &[usize],
    target: &[i64],
    allow_zero: bool,
) -> Result<Vec<usize>, String> {
    let total: usize = shape.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allow_zero => out.push(
                *shape
                    .get(i)
                    .ok_or_else(|| format!("shape {target:?}: no dimension {i} to copy"))?,
            ),
            t if t >= 0 => out.push(t as usize),
            _ => return Err(format!("invalid reshape target {target:?}")),
        }
    }
    if let Some(i) = infer {
        let known: usize = out.iter().product();
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("cannot reshape {shape:?} into {target:?}"));
        }
        out[i] = total / known;
    }
    Ok(out)
}
