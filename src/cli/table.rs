//! Aligned plain-text tables for the CLI's human-readable output.

/// Renders `rows` under `headers`, each column as wide as its widest cell, columns two
/// spaces apart, no trailing spaces. Widths count characters, not bytes.
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        assert_eq!(
            row.len(),
            headers.len(),
            "every row has one cell per column"
        );
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (idx, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if idx > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let padding = width - cell.chars().count();
            line.extend(std::iter::repeat_n(' ', padding));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_without_trailing_spaces() {
        let rows = vec![
            vec!["orders".to_string(), "0".to_string(), "12".to_string()],
            vec!["ö".to_string(), "10".to_string(), String::new()],
        ];
        let table = render_table(&["TOPIC", "PARTITION", "LAG"], &rows);
        assert_eq!(
            table,
            "TOPIC   PARTITION  LAG\n\
             orders  0          12\n\
             ö       10\n"
        );
    }

    #[test]
    fn an_empty_table_is_its_header() {
        assert_eq!(render_table(&["GROUP", "STATE"], &[]), "GROUP  STATE\n");
    }
}
