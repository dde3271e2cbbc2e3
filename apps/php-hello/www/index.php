<?php
/*
 * php-hello: a Granary app in PHP, served by Debian's php-cli built-in
 * server from inside its grain (docs/packaging.md, "A PHP app").
 *
 * GET  /            a page: who Granary says you are, your permissions, the
 *                   visit counter, the note, and the request as received
 * GET  /?format=json the same as JSON (the tests read this)
 * POST /            replace the note with the request body ("write" needed)
 *
 * Granary checks that the person may open the grain; the app decides what
 * they may do from X-Granary-Permissions. State lives in /var, the grain's
 * storage: an SQLite database (pdo_sqlite) holding the counter and the note.
 */
declare(strict_types=1);

function granary(string $name): string
{
    $key = 'HTTP_X_GRANARY_' . strtoupper(str_replace('-', '_', $name));
    return isset($_SERVER[$key]) ? (string)$_SERVER[$key] : '';
}

$db = new PDO('sqlite:/var/php-hello.sqlite3', null, null,
              [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
$db->exec('CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL)');

$permissions = array_values(array_filter(explode(',', granary('Permissions'))));
$method = $_SERVER['REQUEST_METHOD'];
$body = file_get_contents('php://input');

if ($method === 'POST') {
    if (!in_array('write', $permissions, true)) {
        http_response_code(403);
        header('Content-Type: text/plain');
        echo "the write permission is needed to change the note\n";
        return;
    }
    $db->prepare("INSERT INTO state VALUES ('note', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
       ->execute([$body]);
    http_response_code(204);
    return;
}
if ($method !== 'GET' && $method !== 'HEAD') {
    http_response_code(405);
    header('Allow: GET, HEAD, POST');
    return;
}

$db->beginTransaction();
$db->exec("INSERT INTO state VALUES ('visits', '1') ON CONFLICT(key) DO UPDATE SET value = value + 1");
$state = $db->query('SELECT key, value FROM state')->fetchAll(PDO::FETCH_KEY_PAIR);
$db->commit();

$info = [
    'php' => PHP_VERSION,
    'visits' => (int)$state['visits'],
    'note' => $state['note'] ?? null,
    'user' => [
        'id' => granary('User-Id'),
        'name' => granary('Username'),
        'permissions' => $permissions,
        'session' => granary('Session-Id'),
    ],
    'request' => [
        'method' => $method,
        'uri' => $_SERVER['REQUEST_URI'],
        'headers' => getallheaders(),
        'bodyBytes' => strlen($body),
    ],
];

if (($_GET['format'] ?? '') === 'json') {
    header('Content-Type: application/json');
    echo json_encode($info, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES), "\n";
    return;
}

function h(?string $s): string
{
    return htmlspecialchars($s ?? '', ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
}

header('Content-Type: text/html; charset=utf-8');
$name = $info['user']['name'] !== '' ? $info['user']['name'] : 'stranger';
?>
<!doctype html>
<title>PHP hello</title>
<h1>Hello, <?= h($name) ?>!</h1>
<p>PHP <?= h(PHP_VERSION) ?>; this grain has been visited <?= $info['visits'] ?> times;
your permissions: <?= h(implode(', ', $permissions) ?: 'none') ?>.</p>
<h2>Note</h2>
<pre><?= h($info['note'] ?? '(no note yet)') ?></pre>
<h2>Your request, as the app received it</h2>
<pre><?= h($method . ' ' . $_SERVER['REQUEST_URI']) ?>

<?php foreach ($info['request']['headers'] as $k => $v) echo h("$k: $v"), "\n"; ?></pre>
