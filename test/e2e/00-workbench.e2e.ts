/// <reference types="mocha" />
/**
 * Smoke: the workbench opens on the samples workspace and MechLens shows up as an installed
 * extension. Everything later builds on this window.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { screenshot, session } from './session';
import { SEL, runCommand, showExplorer } from './workbench';

describe('e2e smoke: workbench', () => {
  it('renders the workbench with the samples folder in the Explorer', async () => {
    const { page, workspace } = session();
    await page.locator(SEL.workbench).waitFor();
    await screenshot('e2e-00-workbench');
    const prompts = fs.readdirSync(workspace).filter((f) => f.endsWith('.prompts'));
    assert.ok(prompts.length > 0, 'samples/ holds no *.prompts file: the workspace a new user opens is empty');
    await showExplorer(page);
    // The tree fills in after the workbench renders: wait for the files, then compare.
    const names = page.locator(`${SEL.explorerRow} .label-name`);
    await names.filter({ hasText: prompts[0]! }).first().waitFor({ state: 'visible', timeout: 30_000 }).catch(() => undefined);
    const rows = await names.allInnerTexts();
    for (const f of prompts) assert.ok(rows.includes(f), `Explorer should list ${f}; it shows ${JSON.stringify(rows)}`);
  });

  it('lists MechLens among the installed extensions', async () => {
    const { page } = session();
    // @enabled = installed and enabled (the marketplace is unreachable, so nothing else appears).
    // Under load the extension host may not have reported its extensions yet when the view first
    // renders (an empty list was read once in CI): read the list until it names MechLens, and ask
    // for the view again when it stays empty, rather than reading it once.
    let names: string[] = [];
    const deadline = Date.now() + 90_000;
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      if (attempt % 20 === 0) await runCommand(page, 'Extensions: Show Enabled Extensions');
      names = await page.locator('.extensions-viewlet .extension-list-item .name').allInnerTexts();
      if (names.some((n) => n.includes('MechLens'))) break;
      await page.waitForTimeout(500);
    }
    assert.ok(names.some((n) => n.includes('MechLens')), `installed extensions after 90 s: ${JSON.stringify(names)}`);
    await screenshot('e2e-01-extensions');
    await showExplorer(page);
  });
});
