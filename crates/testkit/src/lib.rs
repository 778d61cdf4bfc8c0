//! What shoal's tests share besides the testkit server: the fuzz driver.

pub mod fuzz;
