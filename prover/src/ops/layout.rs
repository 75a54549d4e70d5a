//! Row-major index arithmetic shared by the ops.

/// Row-major strides of `shape` (elements).
pub fn strides(shape: &[u64]) -> Vec<u64> {
    let mut s = vec![1u64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Coordinates of flat index `idx` in `shape`, written into `out`.
pub fn unravel(mut idx: u64, shape: &[u64], out: &mut [u64]) {
    for i in (0..shape.len()).rev() {
        let d = shape[i].max(1);
        out[i] = idx % d;
        idx /= d;
    }
}

/// Coordinates of flat index `idx` in `shape`.
pub fn coords(idx: u64, shape: &[u64]) -> Vec<u64> {
    let mut c = vec![0; shape.len()];
    unravel(idx, shape, &mut c);
    c
}

/// Flat index of `coords` with `strides`.
pub fn ravel(coords: &[u64], strides: &[u64]) -> u64 {
    coords.iter().zip(strides).map(|(c, s)| c * s).sum()
}

/// Strides of `input` when broadcast (numpy rules, right-aligned) to an
/// output of rank `out_rank`: broadcast axes get stride 0.
pub fn broadcast_strides(input: &[u64], out_rank: usize) -> Vec<u64> {
    let st = strides(input);
    let mut out = vec![0u64; out_rank];
    let off = out_rank - input.len();
    for i in 0..input.len() {
        out[off + i] = if input[i] == 1 { 0 } else { st[i] };
    }
    out
}

/// The numpy broadcast of two shapes, or `None` if incompatible.
pub fn broadcast_shapes(a: &[u64], b: &[u64]) -> Option<Vec<u64>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r { a[i + a.len() - r] } else { 1 };
        let db = if i + b.len() >= r { b[i + b.len() - r] } else { 1 };
        out[i] = if da == db {
            da
        } else if da == 1 {
            db
        } else if db == 1 {
            da
        } else {
            return None;
        };
    }
    Some(out)
}

/// Maps output flat indices to input flat indices under broadcasting,
/// incrementally (an odometer), so a full pass costs O(1) per element.
#[derive(Debug, Clone)]
pub struct BroadcastIter {
    shape: Vec<u64>,
    strides: Vec<u64>,
    coord: Vec<u64>,
    pos: u64,
}

impl BroadcastIter {
    /// Iterates over `out_shape`, yielding the flat index into `input`.
    pub fn new(input: &[u64], out_shape: &[u64]) -> Self {
        Self {
            shape: out_shape.to_vec(),
            strides: broadcast_strides(input, out_shape.len()),
            coord: vec![0; out_shape.len()],
            pos: 0,
        }
    }

    /// The current input index; then advances.
    #[inline]
    pub fn next_index(&mut self) -> u64 {
        let cur = self.pos;
        for i in (0..self.shape.len()).rev() {
            self.coord[i] += 1;
            self.pos += self.strides[i];
            if self.coord[i] < self.shape[i] {
                return cur;
            }
            self.pos -= self.strides[i] * self.coord[i];
            self.coord[i] = 0;
        }
        cur
    }
}

/// Input flat index for output flat index `e` under broadcasting.
pub fn broadcast_index(e: u64, out_shape: &[u64], bstrides: &[u64]) -> u64 {
    let mut idx = e;
    let mut pos = 0;
    for i in (0..out_shape.len()).rev() {
        let d = out_shape[i].max(1);
        pos += (idx % d) * bstrides[i];
        idx /= d;
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odometer_matches_direct() {
        let out = [2u64, 3, 4];
        for input in [vec![2u64, 3, 4], vec![3, 1], vec![1], vec![2, 1, 4], vec![]] {
            let bs = broadcast_strides(&input, 3);
            let mut it = BroadcastIter::new(&input, &out);
            for e in 0..24 {
                assert_eq!(it.next_index(), broadcast_index(e, &out, &bs), "{input:?} e={e}");
            }
        }
    }

    #[test]
    fn broadcast_rules() {
        assert_eq!(broadcast_shapes(&[2, 1, 4], &[3, 1]), Some(vec![2, 3, 4]));
        assert_eq!(broadcast_shapes(&[2], &[3]), None);
        assert_eq!(broadcast_shapes(&[], &[5]), Some(vec![5]));
        assert_eq!(broadcast_shapes(&[0, 1], &[1, 3]), Some(vec![0, 3]));
    }
}
