//! Helpers for set-based SQL: bind-parameter lists, multi-row `VALUES`, and the sizes a
//! batch is cut into so each statement shape is prepared once.

/// `$from, …` for `n` bind parameters of an `IN (…)` list.
pub fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Most bind parameters one set-based statement takes. SQLite finds a `$N` parameter by
/// a linear search of the statement's parameter names, when it parses the statement and
/// again when a value is bound to it, so a statement's cost grows with the square of its
/// parameters: at a few thousand, that search was a third of `openorder up`'s CPU.
const MAX_PARAMETERS: usize = 256;

/// Splits `rows` (of `columns` bind parameters each) into the pieces that multi-row
/// statements take: as many pieces of the largest size as fit (a power of two, at most
/// [`MAX_PARAMETERS`] parameters), then the rest in power-of-two pieces. So a statement
/// comes in a handful of sizes only, and each size is prepared once per connection (the
/// statement cache keys on the SQL text).
pub fn statement_chunks<T>(rows: &[T], columns: usize) -> Vec<&[T]> {
    let largest = (MAX_PARAMETERS / columns.max(1)).max(1);
    let largest = 1 << largest.ilog2();
    let mut pieces = Vec::new();
    let mut rest = rows;
    while !rest.is_empty() {
        let size = largest.min(1 << rest.len().ilog2());
        let (piece, tail) = rest.split_at(size);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

/// `($1, $2), ($3, $4), …`: `rows` rows of `columns` bind parameters each, for a
/// multi-row `INSERT … VALUES`. Set-based statements like that one cost a batch one round
/// trip instead of one per row.
pub fn value_rows(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| format!("({})", placeholders(row * columns + 1, columns)))
        .collect::<Vec<_>>()
        .join(", ")
}
