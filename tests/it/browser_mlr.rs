//! Issue 20 browser tests (mlr): real Chromium against `onlabel serve`, with the
//! shared helpers of [`crate::browser`]; screenshots at 1280×900 and 390×844
//! through [`crate::browser::shots`].
