module scalestage.dev/tools/runc-shim

go 1.22
