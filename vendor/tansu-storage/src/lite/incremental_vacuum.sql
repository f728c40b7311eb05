-- Gives up to 1,024 free pages back to the file system (OpenOrder: after retention).
PRAGMA incremental_vacuum(1024);
