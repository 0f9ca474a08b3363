pub mod fileop;
pub mod userdb;
