from d4c.cli import main

raise SystemExit(main())
