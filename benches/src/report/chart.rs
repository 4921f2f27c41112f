//! `docs/benchmarks.svg`: requests/s of every measured row as horizontal
//! bars, with each row's peak PSS.

use std::path::Path;

use plotters::prelude::*;

use super::{Report, mb};
use crate::client::Transport;

impl Report {
    /// Draws requests/s per measured row as horizontal bars (SVG).
    pub fn write_chart(&self, path: &Path) -> Result<(), String> {
        let bars: Vec<(String, Transport, f64, Option<u64>)> = self
            .rows
            .iter()
            .filter(|(_, r)| !r.rounds.is_empty())
            .map(|((t, tr), r)| {
                (
                    format!("{}. {} ({})", t.number(), t.name(), tr.as_str()),
                    *tr,
                    r.rps().unwrap_or(0.0),
                    r.peak_pss(),
                )
            })
            .collect();
        let (w, row_h, top, label_w) = (1000u32, 26i32, 50i32, 300i32);
        let h =
            u32::try_from(top + row_h * i32::try_from(bars.len()).unwrap_or(0) + 40).unwrap_or(400);
        let root = SVGBackend::new(path, (w, h)).into_drawing_area();
        let err = |e: DrawingAreaErrorKind<_>| e.to_string();
        root.fill(&WHITE).map_err(err)?;
        let title = format!(
            "MCP tools/call echo: requests/s, {} clients, mean of {} round(s); peak PSS after each bar",
            self.clients, self.rounds
        );
        root.draw(&Text::new(title, (10, 15), ("sans-serif", 17).into_font()))
            .map_err(err)?;
        let max = bars.iter().map(|b| b.2).fold(1.0, f64::max);
        let span = f64::from(i32::try_from(w).unwrap_or(1000) - label_w - 190);
        for (i, (label, tr, rps, pss)) in bars.iter().enumerate() {
            let y = top + row_h * i32::try_from(i).unwrap_or(0);
            let color = match tr {
                Transport::Streamable => RGBColor(52, 101, 164),
                Transport::Sse => RGBColor(204, 121, 32),
            };
            let len = (rps / max * span).round() as i32;
            root.draw(&Text::new(
                label.clone(),
                (10, y + 6),
                ("sans-serif", 13).into_font(),
            ))
            .map_err(err)?;
            root.draw(&Rectangle::new(
                [(label_w, y + 3), (label_w + len.max(1), y + row_h - 3)],
                color.filled(),
            ))
            .map_err(err)?;
            let value = format!("{rps:.0} req/s, {} MB PSS", pss.map_or("–".into(), mb));
            root.draw(&Text::new(
                value,
                (label_w + len + 6, y + 6),
                ("sans-serif", 12).into_font(),
            ))
            .map_err(err)?;
        }
        let legend_y = top + row_h * i32::try_from(bars.len()).unwrap_or(0) + 12;
        for (j, (name, color)) in [
            ("Streamable HTTP", RGBColor(52, 101, 164)),
            ("legacy SSE", RGBColor(204, 121, 32)),
        ]
        .into_iter()
        .enumerate()
        {
            let x = label_w + 170 * i32::try_from(j).unwrap_or(0);
            root.draw(&Rectangle::new(
                [(x, legend_y), (x + 14, legend_y + 14)],
                color.filled(),
            ))
            .map_err(err)?;
            root.draw(&Text::new(
                name,
                (x + 20, legend_y + 1),
                ("sans-serif", 13).into_font(),
            ))
            .map_err(err)?;
        }
        root.present().map_err(err)?;
        Ok(())
    }
}
